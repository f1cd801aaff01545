// What `train` and `train-sr` train: the pipeline, the subject (and class) examples, the prompts, a batch's loss, the outputs.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;
using DreamBooth.Models.Vae;

namespace DreamBooth.Trainer;

/// <summary>What the training loop needs of a task (DreamBooth, SR fine-tuning, and later pretraining).</summary>
public interface ITrainingTask : IDisposable
{
    /// <summary>Examples per epoch.</summary>
    int DatasetLength { get; }
    /// <summary>The models the optimizer trains, as they are written into checkpoints.</summary>
    IReadOnlyList<TrainedComponent> Components { get; }
    /// <summary>The loss of one micro-batch of dataset indices, on the tape.</summary>
    DenoisingLoss Loss(int[] examples, StepNoise noise);
    /// <summary>The validation grid's images at fixed seeds, or null without a validation prompt.</summary>
    GeneratedImages? Validate();
    /// <summary>Writes the trained pipeline as a full diffusers folder.</summary>
    void SaveModel(string dir);
}

/// <summary>A training example: an image and the index of its prompt.</summary>
sealed record Example(TrainingImage Image, int Prompt);

/// <summary>
/// DreamBooth on a diffusers pipeline (train), or the Imagen recipe's fine-tuning of a super-resolution stage on
/// (low-res, high-res) pairs of the subject (train-sr). Each batch is B instance examples then, with prior preservation,
/// B class examples (diffusers' collate order), in one forward. With a VAE, images become latents: each image's posterior
/// is computed once and cached when the crop is fixed (--center_crop), and a latent is drawn from it per step as diffusers
/// does by encoding each step; with random crops the batch is encoded each step. A frozen text encoder encodes every
/// prompt once and is freed.
/// </summary>
public sealed class DreamBoothTask : ITrainingTask
{
    readonly StableDiffusionPipeline _p;
    readonly TrainOptions _o;
    readonly bool _superResolution;
    readonly int _resolution, _lowResolution;
    readonly List<Example> _instances, _classes;
    readonly List<string> _prompts;
    readonly Dictionary<string, Tensor> _embeddings = [];                  // (1, L, D) per prompt, frozen encoder only
    readonly Dictionary<(string, bool), Posterior> _posteriors = [];       // per (image, flipped) with a fixed crop
    readonly NoiseSchedule _schedule;
    readonly LossSettings _loss;
    readonly ulong _seed;
    readonly int _noiseClass;                                              // train-sr: --noise_level's class
    readonly LoraWeights? _lora;                                           // --use_lora: the adapters, and their own store
    readonly ParameterStore? _loraStore;

    DreamBoothTask(StableDiffusionPipeline p, TrainOptions o, bool superResolution, int resolution, int lowResolution,
        List<Example> instances, List<Example> classes, List<string> prompts, ulong seed)
    {
        (_p, _o, _superResolution, _resolution, _lowResolution) = (p, o, superResolution, resolution, lowResolution);
        (_instances, _classes, _prompts, _seed) = (instances, classes, prompts, seed);
        _schedule = NoiseSchedule.FromConfig(p.SchedulerConfig);
        _loss = new LossSettings(o.PriorLossWeight, o.SnrGamma, o.OffsetNoise);
        _noiseClass = superResolution ? LowResAugmentation.For(p).ClassOf(o.NoiseLevel) : 0;
        if (o.UseLora)
        {
            var settings = new LoraSettings(o.Rank, o.LoraAlpha ?? o.Rank, o.TrainTextEncoder, o.LoraDropout);
            _lora = LoraWeights.Attach(p, settings.Rank, settings.Alpha, settings.TextEncoder, settings.Dropout);
            _loraStore = new ParameterStore(p.Backend, _lora);
            _loraStore.Initialize(seed ^ LoraInitStream);
            var (lora, store) = (_lora, _loraStore);
            Components = [new TrainedComponent(LoraFile.CheckpointFolder, store,
                folder => { settings.Save(Path.Combine(folder, "config.json")); LoraFile.Save(Path.Combine(folder, LoraFile.AdapterName), lora, LoraLayout.Peft); },
                folder =>
                {
                    settings.Expect(Path.Combine(folder, "config.json"));   // same shapes at another α or dropout would resume silently wrong
                    StateDict.Load(store, Path.Combine(folder, LoraFile.AdapterName));
                })];
            return;
        }
        var components = new List<TrainedComponent> { TrainedComponent.Model("unet", p.UnetWeights, p.UnetConfig.Save) };
        if (o.TrainTextEncoder) components.Add(TrainedComponent.Model("text_encoder", p.TextEncoderWeights, p.TextEncoderConfig.Save));
        Components = components;
    }

    /// <summary>The Philox stream of the adapters' initial A (the run's seed xor this), apart from the data and noise draws.</summary>
    const ulong LoraInitStream = 0x6c6f7261UL;

    public int DatasetLength => Math.Max(_instances.Count, _classes.Count);
    public IReadOnlyList<TrainedComponent> Components { get; }
    public int Resolution => _resolution;
    public int ClassImageCount => _classes.Count;

    /// <summary>
    /// Checks every input before any long work (the model folder, the images, the output folder), loads the pipeline,
    /// then generates missing class images and encodes the prompts. Errors name the file and the problem.
    /// </summary>
    public static DreamBoothTask Create(TrainOptions o, IBackend backend, bool superResolution, ulong seed)
    {
        CheckModelFolder(o.Model);
        var index = Models.Configs.ModelIndex.Load(Path.Combine(o.Model, "model_index.json"));
        var unetConfig = Models.Configs.UNet2DConditionConfig.Load(Path.Combine(o.Model, "unet", "config.json"));
        var vaeConfig = index.Component("vae") is { ClassName: not null }
            ? Models.Configs.AutoencoderKLConfig.Load(Path.Combine(o.Model, "vae", "config.json")) : null;
        int vaeFactor = vaeConfig is null ? 1 : 1 << (vaeConfig.BlockOutChannels.Length - 1);
        if (superResolution != SuperResolutionUNet.Describes(unetConfig))
            throw new ArgumentException(superResolution
                ? $"{o.Model}: its UNet is not a super-resolution stage's (in_channels > out_channels, and num_class_embeds or class_embed_type \"timestep\"); use train"
                : $"{o.Model}: its UNet is a super-resolution stage's; fine-tune it with train-sr");
        int resolution = o.Resolution ?? (unetConfig.SampleSize ?? 64) * vaeFactor;
        int multiple = vaeFactor * unetConfig.Downsampling;
        if (resolution % multiple != 0)
            throw new ArgumentException($"--resolution {resolution} must be a multiple of {multiple} (the VAE factor × the UNet's downsampling)");
        int lowResolution = o.LowResResolution ?? resolution / 4;
        if (superResolution && (lowResolution < 1 || resolution % lowResolution != 0))
            throw new ArgumentException($"--low_res_resolution {lowResolution} must divide --resolution {resolution}");

        int rows = o.WithPriorPreservation ? 2 * o.TrainBatchSize : o.TrainBatchSize;
        int imageCount = o.Concepts.Sum(c => Directory.Exists(c.InstanceDataDir) ? ImageFolder.List(c.InstanceDataDir, "").Length : 0)
                         + (o.WithPriorPreservation ? o.Concepts.Count * o.NumClassImages : 0);
        MemoryPlan.Check(backend.Name, unetConfig, Models.Configs.ClipTextConfig.Load(Path.Combine(o.Model, "text_encoder", "config.json")),
            vaeConfig is null ? 0 : new AutoencoderKL(vaeConfig).ParameterCount(), o, rows, resolution / vaeFactor, imageCount, resolution);

        var prompts = new List<string>();
        int Prompt(string text) { int i = prompts.IndexOf(text); if (i < 0) { prompts.Add(text); i = prompts.Count - 1; } return i; }
        var instances = new List<Example>();
        foreach (var c in o.Concepts)
        {
            var files = ImageFolder.List(c.InstanceDataDir, "--instance_data_dir");
            if (files.Length == 0)
                throw new InvalidDataException($"--instance_data_dir {c.InstanceDataDir}: no images (JPEG, PNG, WebP or BMP) in the folder");
            instances.AddRange(files.Select(f => new Example(ImageFolder.Load(f, resolution, o.MaxImagePixels), Prompt(c.InstancePrompt))));
        }
        var classes = o.WithPriorPreservation   // the images already there, checked before any generation
            ? o.Concepts.SelectMany(c => LoadClassImages(c, o.NumClassImages, resolution, Prompt(c.ClassPrompt!))).ToList() : [];
        CheckOutputFolder(o);

        var trainable = o.UseLora ? Trainable.None : Trainable.Unet | (o.TrainTextEncoder ? Trainable.TextEncoder : Trainable.None);
        var p = StableDiffusionPipeline.Load(o.Model, backend, o.Variant, trainable: trainable);
        DreamBoothTask? task = null;
        try
        {
            foreach (var c in o.Concepts)
            {
                PromptLength.Warn(p.Tokenizer, "--instance_prompt", c.InstancePrompt);
                if (o.WithPriorPreservation) PromptLength.Warn(p.Tokenizer, "--class_prompt", c.ClassPrompt!);
            }
            if (o.ValidationPrompt is { } validation) PromptLength.Warn(p.Tokenizer, "--validation_prompt", validation);
            if (o.WithPriorPreservation)
            {
                var generation = new ClassGeneration(o.ClassScheduler, o.ClassInferenceSteps, o.ClassGuidanceScale, o.SampleBatchSize,
                    o.PriorGenerationPrecision, seed);
                int generated = o.Concepts.Sum(c => ClassImages.TopUp(p, c.ClassDataDir!, c.ClassPrompt!, o.NumClassImages, generation));
                if (generated > 0)   // the folders are complete now
                    classes = o.Concepts.SelectMany(c => LoadClassImages(c, o.NumClassImages, resolution, Prompt(c.ClassPrompt!))).ToList();
            }
            task = new DreamBoothTask(p, o, superResolution, resolution, lowResolution, instances, classes, prompts, seed);
            task.Prepare();
            return task;
        }
        catch
        {
            if (task is not null) task.Dispose();   // the pipeline, and what the task holds beside it (adapters, embeddings, posteriors)
            else p.Dispose();
            throw;
        }
    }

    static List<Example> LoadClassImages(Concept c, int wanted, int resolution, int prompt)
    {
        if (!Directory.Exists(c.ClassDataDir)) return [];
        return ImageFolder.List(c.ClassDataDir!, "--class_data_dir").Take(wanted)
            .Select(f => new Example(ImageFolder.Load(Path.GetFullPath(f), resolution), prompt)).ToList();
    }

    static void CheckModelFolder(string model)
    {
        if (File.Exists(Path.Combine(model, "model_index.json"))) return;
        if (!Directory.Exists(model) && model.Count(ch => ch == '/') == 1 && !model.StartsWith('.') && !Path.IsPathRooted(model))
            throw new DirectoryNotFoundException($"--pretrained_model_name_or_path {model}: not a local folder; this trainer does not " +
                                                 "download from a hub: download the model in the diffusers layout first and pass its folder");
        throw new DirectoryNotFoundException($"--pretrained_model_name_or_path {model}: not a diffusers model folder (no model_index.json)");
    }

    /// <summary>The output folder must be writable, and must not hold another run unless it is being resumed; a class-image
    /// folder that still lacks images must be writable too.</summary>
    static void CheckOutputFolder(TrainOptions o)
    {
        Guard.ExpectFolder("--output_dir", o.OutputDir);
        if (o.ResumeFromCheckpoint is null && (Checkpoints.List(o.OutputDir).Count > 0 || File.Exists(Path.Combine(o.OutputDir, "model_index.json")) ||
                                                File.Exists(Path.Combine(o.OutputDir, LoraFile.DiffusersName))))
            throw new IOException($"--output_dir {o.OutputDir} already holds a training run; continue it with --resume_from_checkpoint latest, " +
                                  "or choose another folder (nothing was overwritten)");
        Guard.Writable("--output_dir", o.OutputDir);
        if (o.SaveSingleFile)
        {
            if (File.Exists(o.SingleFilePath) && o.ResumeFromCheckpoint is null)
                throw new IOException($"--save_single_file: {o.SingleFilePath} already exists; choose another --output_dir or move that file");
            if (!o.UseLora) SingleFile.Mapping(o.Model);   // a model without an SD 1.x layout fails now, not after training
        }
        if (o.WithPriorPreservation)
            foreach (var c in o.Concepts)
                if (!Directory.Exists(c.ClassDataDir) || ImageFolder.List(c.ClassDataDir, "--class_data_dir").Length < o.NumClassImages)
                    Guard.Writable("--class_data_dir", c.ClassDataDir!);
    }

    /// <summary>Gradient checkpointing, the frozen encoder's embeddings (then the encoder is freed), the cached posteriors.</summary>
    void Prepare()
    {
        if (_o.GradientCheckpointing)
        {
            _p.Unet.EnableGradientCheckpointing();
            if (_o.TrainTextEncoder) _p.TextEncoder.EnableGradientCheckpointing();
        }
        if (!_o.TrainTextEncoder)
        {
            using (Tape.NoGrad())
                foreach (string prompt in _prompts.Append(_o.ValidationPrompt ?? "").Append("").Distinct())
                {
                    using var scope = new TensorScope();
                    _embeddings[prompt] = scope.Keep(TextToImage.EncodePrompt(_p, prompt));
                }
            _p.ReleaseTextEncoder();
        }
        if (_p.Vae is { } vae && _o.CenterCrop)
            using (Tape.NoGrad())
                foreach (var e in _instances.Concat(_classes))
                    foreach (bool flip in _o.RandomFlip ? new[] { false, true } : [false])
                    {
                        if (_posteriors.ContainsKey((e.Image.Path, flip))) continue;
                        var pixels = new float[3 * _resolution * _resolution];
                        ImageFolder.Crop(pixels, e.Image, _resolution, true, 0, 0, flip);
                        using var scope = new TensorScope();
                        var posterior = vae.Encode(Tensor.FromArray(_p.Backend, pixels, 1, 3, _resolution, _resolution));
                        _posteriors[(e.Image.Path, flip)] = new Posterior(scope.Keep(F.Copy(posterior.Mean)), scope.Keep(F.Copy(posterior.LogVar)));
                    }
    }

    public DenoisingLoss Loss(int[] examples, StepNoise noise)
    {
        var rows = examples.Select(i => _instances[i % _instances.Count])
            .Concat(_classes.Count == 0 ? [] : examples.Select(i => _classes[i % _classes.Count])).ToList();
        _lora?.SetDropoutStream((noise.Seed, noise.Offset(StepNoise.LoraDropoutDraw)));
        var (pixels, flips) = Crops(rows, noise);
        var x0 = Encode(rows, pixels, flips, noise);                                        // (N, C, h, w)
        var context = Context(rows);                                                         // (N, L, D)
        Func<Tensor, float[], Tensor> predict = (x, t) => _p.Unet.Forward(x, t, context);
        if (_superResolution)
        {
            var (lowRes, labels) = LowRes(pixels, rows.Count, noise);
            var sr = new SuperResolutionUNet(_p.Unet);
            predict = (x, t) => sr.Forward(x, lowRes, t, context, labels);
        }
        using (Autocast.Enable(TrainOptions.ComputeDType(_o.MixedPrecision)))
            return DenoisingObjective.Compute(_schedule, predict, x0, examples.Length, _loss, noise);
    }

    /// <summary>Each row cropped (centred or at a random corner) and maybe flipped: (N, 3, R, R) on the host.</summary>
    (float[] Pixels, bool[] Flips) Crops(List<Example> rows, StepNoise noise)
    {
        int plane = 3 * _resolution * _resolution;
        var pixels = new float[rows.Count * plane];
        var flips = new bool[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            var (top, left, flip, _) = noise.Uniforms(StepNoise.AugmentationDraw, i);
            flips[i] = _o.RandomFlip && flip < 0.5;
            ImageFolder.Crop(pixels.AsSpan(i * plane, plane), rows[i].Image, _resolution, _o.CenterCrop, top, left, flips[i]);
        }
        return (pixels, flips);
    }

    /// <summary>Pixels in pixel space; with a VAE, latents z·scaling_factor drawn from each row's posterior.</summary>
    Tensor Encode(List<Example> rows, float[] pixels, bool[] flips, StepNoise noise)
    {
        var images = Tensor.FromArray(_p.Backend, pixels, rows.Count, 3, _resolution, _resolution);
        if (_p.Vae is not { } vae) return images;
        using var noGrad = Tape.NoGrad();
        Posterior posterior;
        if (_o.CenterCrop)
        {
            var cached = rows.Select((e, i) => _posteriors[(e.Image.Path, flips[i])]).ToList();
            posterior = new Posterior(cached.Select(c => c.Mean).Aggregate((a, b) => F.Concat(a, b, 0)),
                cached.Select(c => c.LogVar).Aggregate((a, b) => F.Concat(a, b, 0)));
        }
        else posterior = vae.Encode(images);
        var z = AutoencoderKL.Sample(posterior, noise.Normal(_p.Backend, StepNoise.LatentDraw, posterior.Mean.Shape.ToArray()));
        return F.Scale(z, vae.ScalingFactor);
    }

    /// <summary>The prompt embeddings of each row: cached rows of the frozen encoder, or the trained encoder's forward.</summary>
    Tensor Context(List<Example> rows)
    {
        if (!_o.TrainTextEncoder) return rows.Select(e => _embeddings[_prompts[e.Prompt]]).Aggregate((a, b) => F.Concat(a, b, 0));
        var ids = rows.SelectMany(e => _p.Tokenizer.Encode(_prompts[e.Prompt])).ToArray();
        return _p.TextEncoder.Forward(Tensor.FromInts(_p.Backend, ids, rows.Count, _p.Tokenizer.MaxLength));
    }

    /// <summary>train-sr's conditioning: each row's crop area-downsampled to the low resolution and noised at
    /// --noise_level, and that level's class.</summary>
    (Tensor LowRes, int[] Labels) LowRes(float[] pixels, int count, StepNoise noise)
    {
        int factor = _resolution / _lowResolution, plane = 3 * _resolution * _resolution, low = 3 * _lowResolution * _lowResolution;
        var lowPixels = new float[count * low];
        for (int i = 0; i < count; i++)
            ImageFolder.Downsample(lowPixels.AsSpan(i * low, low), pixels.AsSpan(i * plane, plane), _resolution, factor);
        var images = Tensor.FromArray(_p.Backend, lowPixels, count, 3, _lowResolution, _lowResolution);
        var noised = LowResAugmentation.Apply(images, _o.NoiseLevel, noise.Normal(_p.Backend, StepNoise.LowResDraw, images.Shape.ToArray()));
        return (noised, Enumerable.Repeat(_noiseClass, count).ToArray());
    }

    public GeneratedImages? Validate()
    {
        if (_o.ValidationPrompt is not { } prompt) return null;
        _lora?.SetDropoutStream(null);   // sampling: no dropout (eval mode); the next Loss sets its step's stream again
        int n = _o.NumValidationImages;
        var request = new GenerationRequest(prompt, "", n, 25, 7.5, _o.ValidationScheduler, Seed: _seed, Height: _resolution, Width: _resolution);
        Func<string, Tensor>? encode = _o.TrainTextEncoder ? null : text => _embeddings[text];
        if (!_superResolution) return TextToImage.Generate(_p, request, encode: encode);
        using var scope = new TensorScope();
        var rows = Enumerable.Range(0, n).Select(i => _instances[i % _instances.Count]).ToList();
        var pixels = new float[n * 3 * _resolution * _resolution];
        for (int i = 0; i < n; i++)
            ImageFolder.Crop(pixels.AsSpan(i * 3 * _resolution * _resolution, 3 * _resolution * _resolution), rows[i].Image, _resolution, true, 0, 0, false);
        var (lowRes, labels) = LowRes(pixels, n, new StepNoise(_seed, ulong.MaxValue >> 34));
        return TextToImage.Generate(_p, request, encode: encode, lowRes: new LowResCondition(lowRes, labels[0]));
    }

    /// <summary>
    /// The whole pipeline in the diffusers layout: the trained unet (and text encoder) as F32, the other components copied
    /// from the source model (a variant's weights rewritten under the plain name, so the folder loads without --variant).
    /// A LoRA run writes its adapters instead, as train_dreambooth_lora.py does: pytorch_lora_weights.safetensors.
    /// --save_single_file adds what SD apps load, OUTPUT_DIR.safetensors: the model in the original (LDM) layout, or the
    /// adapters under kohya's names; a resumed run's earlier file is replaced, and only by a complete one.
    /// </summary>
    public void SaveModel(string dir)
    {
        Directory.CreateDirectory(dir);
        if (_lora is not null)
        {
            LoraFile.Save(Path.Combine(dir, LoraFile.DiffusersName), _lora, LoraLayout.Diffusers);
            if (_o.SaveSingleFile) LoraFile.Save(_o.SingleFilePath, _lora, LoraLayout.Kohya);
            return;
        }
        AtomicFile.Write(Path.Combine(dir, "model_index.json"), temp => File.Copy(Path.Combine(_o.Model, "model_index.json"), temp));
        foreach (var c in Components) Checkpoints.SaveComponent(dir, c);
        foreach (var component in _p.Index.Components.Where(c => c.ClassName is not null && Components.All(t => t.Name != c.Name)))
            CopyComponent(Path.Combine(_o.Model, component.Name), Path.Combine(dir, component.Name), _o.Variant);
        if (_o.SaveSingleFile)
            Console.Error.WriteLine($"wrote {_o.SingleFilePath}: {SingleFile.Write(dir, _o.SingleFilePath)} tensors in the single-file layout");
    }

    static void CopyComponent(string source, string target, string? variant)
    {
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source))
        {
            string name = Path.GetFileName(file);
            if (!name.EndsWith(".safetensors", StringComparison.Ordinal))
            {
                if (!name.StartsWith('.')) AtomicFile.Write(Path.Combine(target, name), temp => File.Copy(file, temp));
                continue;
            }
            string[] parts = name.Split('.');
            bool isVariant = parts.Length == 3;                   // model.fp16.safetensors
            if (variant is null ? isVariant : !(isVariant && parts[1] == variant)) continue;
            string plain = $"{parts[0]}.safetensors";
            using var weights = SafetensorsFile.Open(file);
            SafetensorsWriter.Write(Path.Combine(target, plain),
                weights.Tensors.Select(t => t.DType is SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F32
                    ? SafetensorsEntry.FromFloats(t.Name, t.Shape, weights.ReadFloats(t.Name))
                    : new SafetensorsEntry(t.Name, t.DType, t.Shape, stream =>
                    {
                        var bytes = new byte[t.ByteCount];
                        weights.ReadBytes(t.Name, bytes);
                        stream.Write(bytes);
                    })).ToList(),
                new Dictionary<string, string> { ["format"] = "pt" });
        }
    }

    public void Dispose()
    {
        _loraStore?.Dispose();
        foreach (var t in _embeddings.Values) t.Dispose();
        foreach (var (mean, logVar) in _posteriors.Values) { mean.Dispose(); logVar.Dispose(); }
        _p.Dispose();
    }
}
