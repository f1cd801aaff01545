// Pretraining the embedded cascade on the toy world: its configs, and the task the one training loop runs for each stage.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Pipeline;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;

namespace DreamBooth.Trainer.World;

/// <summary>
/// The cascade, Imagen-style in pixel space: a base UNet2DConditionModel at <see cref="BaseSize"/> and a super-resolution
/// UNet to <see cref="SrSize"/>, each with its own small CLIP text encoder over the toy vocabulary, trained jointly from
/// scratch. The configs are built here and written into each stage's folder as config.json.
/// </summary>
public static class ToyModels
{
    public const int BaseSize = 32, SrSize = 64;

    /// <summary>The SR stage is trained on noise-level classes [0, MaxNoiseClass) of its low-res schedule.</summary>
    public const int MaxNoiseClass = 350;

    static ClipTextConfig TextEncoder(int vocabSize) => new()
    {
        VocabSize = vocabSize, HiddenSize = 64, IntermediateSize = 256, ProjectionDim = 64, NumHiddenLayers = 2, NumAttentionHeads = 4,
        MaxPositionEmbeddings = ToyVocabulary.MaxLength, HiddenAct = "quick_gelu", BosTokenId = vocabSize - 2, EosTokenId = vocabSize - 1,
        PadTokenId = vocabSize - 1,
    };

    static UNet2DConditionConfig Unet(bool superResolution) => new()
    {
        SampleSize = superResolution ? SrSize : BaseSize,
        InChannels = superResolution ? 6 : 3,
        OutChannels = 3,
        BlockOutChannels = superResolution ? [16, 32, 64] : [32, 64, 128],
        DownBlockTypes = superResolution ? ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"] : ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        UpBlockTypes = superResolution ? ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"] : ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        OnlyCrossAttention = [false, false, false],
        AttentionHeadDim = [4, 4, 4],
        LayersPerBlock = 1,
        NormNumGroups = 8,
        CrossAttentionDim = 64,
        // The noise level through an MLP of its sinusoid (DeepFloyd IF's stage II), not a 1,000-row table: with 350 levels
        // drawn, 2,000 steps train each row about 90 times. The earlier SR weights had such a table; its rows stayed near
        // their N(0, 1) start (norms 7.3–9.0, untrained rows 7.3) while the time embedding's norm is 6–13, so each level
        // added its own random offset to the timestep, and the samples stayed noisy.
        ClassEmbedType = superResolution ? "timestep" : null,
        AdditionEmbedType = superResolution ? null : "text",
        AdditionEmbedTypeNumHeads = 4,
    };

    /// <summary>The cosine schedule (Nichol and Dhariwal 2021), which suits small images, with v-prediction (Salimans and Ho
    /// 2022): at high noise ε-prediction must be exact to within √ᾱ for x̂0 to survive, which a first run of this model
    /// (linear β, ε) never reached (its loss at t = 900 was above that of predicting x_t itself); v keeps x̂0's error at
    /// the model's.</summary>
    static SchedulerConfig Scheduler => new()
    {
        ClassName = "DDIMScheduler", BetaSchedule = "squaredcos_cap_v2", NumTrainTimesteps = 1000, ClipSample = false,
        SetAlphaToOne = false, StepsOffset = 1, PredictionType = "v_prediction",
    };

    /// <summary>The low-res schedule of the SR stage: β from 1e-6, so its first classes are fine enough to tell 1e-5 from 1e-3.</summary>
    static SchedulerConfig LowResScheduler => new()
    {
        ClassName = "DDPMScheduler", BetaSchedule = "linear", BetaStart = 1e-6, BetaEnd = 0.02, NumTrainTimesteps = 1000, ClipSample = false,
    };

    /// <summary>Writes a stage's configs and tokenizer into <paramref name="dir"/>, ready for StableDiffusionPipeline.Initialize.</summary>
    public static void WriteConfigs(string dir, bool superResolution)
    {
        ToyVocabulary.Write(Path.Combine(dir, "tokenizer"));
        int vocabSize = ToyVocabulary.Build().Vocab.Count;
        foreach (string sub in new[] { "unet", "text_encoder", "scheduler" }) Directory.CreateDirectory(Path.Combine(dir, sub));
        Unet(superResolution).Save(Path.Combine(dir, "unet", "config.json"));
        TextEncoder(vocabSize).Save(Path.Combine(dir, "text_encoder", "config.json"));
        Scheduler.Save(Path.Combine(dir, "scheduler", "scheduler_config.json"));
        var components = new List<PipelineComponent>
        {
            new("scheduler", "diffusers", "DDIMScheduler"), new("text_encoder", "transformers", "CLIPTextModel"),
            new("tokenizer", "transformers", "CLIPTokenizer"), new("unet", "diffusers", "UNet2DConditionModel"),
        };
        if (superResolution)
        {
            Directory.CreateDirectory(Path.Combine(dir, "low_res_scheduler"));
            LowResScheduler.Save(Path.Combine(dir, "low_res_scheduler", "scheduler_config.json"));
            components.Insert(0, new PipelineComponent("low_res_scheduler", "diffusers", "DDPMScheduler"));
        }
        new ModelIndex(superResolution ? "StableDiffusionUpscalePipeline" : "StableDiffusionPipeline", "0.30.0", components,
            new Dictionary<string, string>()).Save(Path.Combine(dir, "model_index.json"));
    }
}

/// <summary>
/// One stage's pretraining: every micro-batch renders new scenes (scene = (seed, micro-step · batch + row)), captions
/// them (the full caption 40 % of the time, shorter forms, 15 % empty for guidance) and trains UNet and text encoder
/// together. The SR stage sees each scene at 64×64 and, as its input, area-downsampled to 32×32 and noised at a random
/// noise-level class in [0, 350), the augmentation Imagen trains its super-resolution stages with.
/// </summary>
public sealed class ToyPretrainTask(StableDiffusionPipeline p, bool superResolution, int batchSize) : ITrainingTask
{
    readonly NoiseSchedule _schedule = NoiseSchedule.FromConfig(p.SchedulerConfig);

    /// <summary>A virtual epoch: scenes never repeat, the data order only sets how many steps make an "epoch".</summary>
    public int DatasetLength => 10_000;

    public IReadOnlyList<TrainedComponent> Components { get; } =
        [TrainedComponent.Model("unet", p.UnetWeights, p.UnetConfig.Save), TrainedComponent.Model("text_encoder", p.TextEncoderWeights, p.TextEncoderConfig.Save)];

    public DenoisingLoss Loss(int[] examples, StepNoise noise)
    {
        int n = examples.Length, size = superResolution ? ToyModels.SrSize : ToyModels.BaseSize;
        var scenes = Enumerable.Range(0, n).Select(r => ToyWorld.Sample(noise.Seed, (long)noise.Step * batchSize + r)).ToList();
        var captions = scenes.Select((s, r) => ToyWorld.TrainingCaption(s, noise.Uniforms(StepNoise.AugmentationDraw, r).U0)).ToList();
        var pixels = scenes.SelectMany(s => ToyWorld.Render(s, size)).ToArray();
        var x0 = Tensor.FromArray(p.Backend, pixels, n, 3, size, size);
        var ids = captions.SelectMany(p.Tokenizer.Encode).ToArray();
        var context = p.TextEncoder.Forward(Tensor.FromInts(p.Backend, ids, n, p.Tokenizer.MaxLength));
        Func<Tensor, float[], Tensor> predict = (x, t) => p.Unet.Forward(x, t, context);
        if (superResolution)
        {
            var (lowRes, labels) = LowRes(pixels, n, noise);
            var sr = new SuperResolutionUNet(p.Unet);
            predict = (x, t) => sr.Forward(x, lowRes, t, context, labels);
        }
        return DenoisingObjective.Compute(_schedule, predict, x0, n, new LossSettings(), noise);
    }

    (Tensor LowRes, int[] Labels) LowRes(float[] pixels, int n, StepNoise noise)
    {
        int high = ToyModels.SrSize, low = ToyModels.BaseSize, plane = 3 * high * high, lowPlane = 3 * low * low;
        var lowPixels = new float[n * lowPlane];
        for (int i = 0; i < n; i++) ImageFolder.Downsample(lowPixels.AsSpan(i * lowPlane, lowPlane), pixels.AsSpan(i * plane, plane), high, high / low);
        var augmentation = LowResAugmentation.For(p);
        var labels = noise.Integers(StepNoise.LowResDraw, n, ToyModels.MaxNoiseClass);
        var eps = noise.Normal(p.Backend, StepNoise.LatentDraw, n, 3, low, low);
        var rows = Enumerable.Range(0, n).Select(i => LowResAugmentation.Apply(
            Tensor.FromArray(p.Backend, lowPixels[(i * lowPlane)..((i + 1) * lowPlane)], 1, 3, low, low), augmentation.Variance(labels[i]),
            F.Narrow(eps, 0, i, 1)));
        return (rows.Aggregate((a, b) => F.Concat(a, b, 0)), labels);
    }

    /// <summary>Fixed prompts at fixed seeds; the SR stage upscales renders of the same prompts' scenes.</summary>
    public GeneratedImages? Validate()
    {
        var request = new GenerationRequest("a red star on a blue background", NumImages: 4, Steps: 25, GuidanceScale: 3, Seed: 1);
        if (!superResolution) return TextToImage.Generate(p, request);
        var scenes = Enumerable.Range(0, 4).Select(i => ToyWorld.Sample(99, i)).ToList();
        var low = new GeneratedImages(scenes.SelectMany(s => ToyWorld.Render(s, ToyModels.BaseSize)).Select(v => v * 0.5f + 0.5f).ToArray(),
            4, ToyModels.BaseSize, ToyModels.BaseSize);
        return Cascade.Upscale(p, request with { Prompt = ToyWorld.Caption(scenes[0], 3) }, low, 1e-5);
    }

    public void SaveModel(string dir) => p.Save(dir);

    public void Dispose() => p.Dispose();
}
