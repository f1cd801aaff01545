// Text-to-image sampling: encode the prompts, denoise with a sampler and classifier-free guidance, decode to pixels.
using DreamBooth.Autograd;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;

namespace DreamBooth.Models.Pipeline;

/// <summary>What to generate. Sizes are in pixels (multiples of the VAE factor × the UNet's downsampling); null takes the UNet's sample_size.</summary>
public sealed record GenerationRequest(string Prompt, string NegativePrompt = "", int NumImages = 1, int Steps = 50,
    double GuidanceScale = 7.5, string? Scheduler = null, double Eta = 0, ulong Seed = 0, int? Height = null, int? Width = null);

/// <summary>Pixels (Count, 3, Height, Width) with values in [0, 1].</summary>
public sealed record GeneratedImages(float[] Pixels, int Count, int Height, int Width);

/// <summary>A super-resolution stage's input: the low-res images (N, 3, h, w) in [−1, 1], already noised at the level
/// whose class is <paramref name="NoiseClass"/> (<see cref="LowResAugmentation"/>).</summary>
public sealed record LowResCondition(Tensor Images, int NoiseClass);

public static class TextToImage
{
    /// <summary>
    /// Images with values in [0, 1]. The loop, as diffusers' StableDiffusionPipeline runs it: x_T ~ N(0, σ_init²);
    /// for each timestep, ε = ε_uncond + g·(ε_cond − ε_uncond) from one UNet call on the doubled batch (skipped when
    /// g ≤ 1), then x ← a·x + b·ε + c·z with the sampler's coefficients; finally the VAE decodes x / scaling_factor (or x
    /// is already pixels), mapped from [−1, 1] to [0, 1]. All randomness comes from the Philox stream of Seed: the
    /// same request gives the same images on every backend up to rounding. onStep(i, n) reports progress.
    /// encode maps a prompt to its embeddings (1, L, D) (default: the pipeline's text encoder; a trainer that freed the
    /// encoder passes its cache). A super-resolution stage also takes <paramref name="lowRes"/>, the same for both
    /// halves of the guided batch, as SD's x4 upscaler.
    /// </summary>
    public static GeneratedImages Generate(StableDiffusionPipeline p, GenerationRequest r, Action<int, int>? onStep = null,
        Func<string, Tensor>? encode = null, LowResCondition? lowRes = null)
    {
        if (p.IsSuperResolution != lowRes is not null)
            throw new ArgumentException(p.IsSuperResolution ? "text to image: a super-resolution stage needs the low-res images"
                : "text to image: low-res images were given, but the UNet is not a super-resolution stage's");
        if (lowRes is not null && lowRes.Images.Dim(0) != r.NumImages)
            throw new ArgumentException($"text to image: {lowRes.Images.Dim(0)} low-res images for {r.NumImages} outputs");
        if (r.NumImages < 1 || r.Steps < 1)
            throw new ArgumentException($"text to image: need at least one image and one step (got {r.NumImages} images, {r.Steps} steps)");
        var sampler = SchedulerFactory.FromConfig(p.SchedulerConfig, r.Scheduler, r.Eta);
        sampler.SetTimesteps(r.Steps);
        int factor = p.VaeScaleFactor, downsampling = p.UnetConfig.Downsampling;
        int defaultSize = (p.UnetConfig.SampleSize ?? 64) * factor;
        int height = r.Height ?? defaultSize, width = r.Width ?? defaultSize;
        if (height % (factor * downsampling) != 0 || width % (factor * downsampling) != 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"text to image: {width}×{height} pixels; this model draws positive multiples of {factor * downsampling} px " +
                                        $"(the VAE's factor {factor} × the UNet's {downsampling}× downsampling)");

        using var noGrad = Tape.NoGrad();
        using var scope = new TensorScope();
        int n = r.NumImages;
        bool guided = r.GuidanceScale > 1;
        var context = EncodePrompts(p, r, guided, encode ?? (prompt => EncodePrompt(p, prompt)));   // (2N or N, 77, D)
        var predict = Predictor(p, lowRes, guided);
        int channels = p.IsSuperResolution ? p.UnetConfig.OutChannels : p.UnetConfig.InChannels;   // an SR UNet's input adds the low-res image
        int[] shape = [n, channels, height / factor, width / factor];
        long length = Tensor.ShapeLength(shape);
        var x = F.Scale(Tensor.RandomNormal(p.Backend, r.Seed, 0, shape), (float)sampler.InitNoiseSigma);
        var (uncondWeight, condWeight) = ClassifierFreeGuidance.Coefficients(r.GuidanceScale);

        for (int i = 0; i < sampler.NumInferenceSteps; i++)
        {
            using var step = new TensorScope();
            var input = F.Scale(guided ? F.Concat(x, x, 0) : x, (float)sampler.ScaleModelInput(i));
            var t = Enumerable.Repeat((float)sampler.Timesteps[i], input.Dim(0)).ToArray();
            var eps = predict(input, t, context);                                            // (2N or N, C, h, w)
            if (guided)
            {
                var (uncond, cond) = F.Chunk2(eps, 0);
                eps = F.Add(F.Scale(uncond, (float)uncondWeight), F.Scale(cond, (float)condWeight));
            }
            var c = sampler.Step(i);
            var next = F.Add(F.Scale(x, (float)c.Sample), F.Scale(eps, (float)c.ModelOutput));
            if (c.Noise != 0)   // each step draws from its own counter range of the seed's stream
                next = F.Add(next, F.Scale(Tensor.RandomNormal(p.Backend, r.Seed, (ulong)(i + 1) * (ulong)length, shape), (float)c.Noise));
            var previous = x;
            x = step.Keep(next);
            previous.Dispose();
            onStep?.Invoke(i + 1, sampler.NumInferenceSteps);
        }

        var images = p.Vae is { } vae ? vae.Decode(F.Scale(x, 1f / vae.ScalingFactor)) : x;   // (N, 3, H, W) in [−1, 1]
        var pixels = images.ToArray();
        for (int i = 0; i < pixels.Length; i++) pixels[i] = Math.Clamp(pixels[i] * 0.5f + 0.5f, 0f, 1f);
        return new GeneratedImages(pixels, n, height, width);
    }

    /// <summary>The UNet call: plain, or a super-resolution UNet's with the low-res images and their class (doubled
    /// like the batch when guided).</summary>
    static Func<Tensor, float[], Tensor, Tensor> Predictor(StableDiffusionPipeline p, LowResCondition? lowRes, bool guided)
    {
        if (lowRes is null) return (x, t, context) => p.Unet.Forward(x, t, context);
        var sr = new SuperResolutionUNet(p.Unet);
        var images = guided ? F.Concat(lowRes.Images, lowRes.Images, 0) : lowRes.Images;
        var labels = Enumerable.Repeat(lowRes.NoiseClass, images.Dim(0)).ToArray();
        return (x, t, context) => sr.Forward(x, images, t, context, labels);
    }

    /// <summary>The prompts' embeddings: [negative × N; prompt × N] when guided, else prompt × N.</summary>
    static Tensor EncodePrompts(StableDiffusionPipeline p, GenerationRequest r, bool guided, Func<string, Tensor> encode)
    {
        var rows = Enumerable.Repeat(encode(r.Prompt), r.NumImages);
        if (guided) rows = Enumerable.Repeat(encode(r.NegativePrompt), r.NumImages).Concat(rows);
        return rows.Aggregate((a, b) => F.Concat(a, b, 0));
    }

    /// <summary>The text encoder's last hidden states for one prompt: (1, L, D).</summary>
    public static Tensor EncodePrompt(StableDiffusionPipeline p, string prompt) =>
        p.TextEncoder.Forward(Tensor.FromInts(p.Backend, p.Tokenizer.Encode(prompt), 1, p.Tokenizer.MaxLength));
}
