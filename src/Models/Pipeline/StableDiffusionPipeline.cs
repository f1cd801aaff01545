// A Stable Diffusion pipeline in the diffusers folder layout: tokenizer, text encoder, UNet, optional VAE and scheduler.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Tokenizer;
using DreamBooth.Models.UNet;
using DreamBooth.Models.Vae;

namespace DreamBooth.Models.Pipeline;

/// <summary>
/// The folder diffusers' StableDiffusionPipeline reads: model_index.json, and one sub-folder per component with its
/// config and weights (unet/ and vae/: config.json + diffusion_pytorch_model[.VARIANT].safetensors; text_encoder/:
/// config.json + model[.VARIANT].safetensors; tokenizer/: vocab.json, merges.txt and its two JSON files; scheduler/:
/// scheduler_config.json). A pipeline without a vae component runs in pixel space (the toy cascade).
/// Every model lives in its own ParameterStore, so one can be trained (UNet) while another stays frozen: only the
/// models named in <see cref="Trainable"/> get gradient buffers. A super-resolution stage is the same folder with a
/// UNet that takes the low-res image (SuperResolutionUNet) and, optionally, low_res_scheduler/: the schedule its
/// noise-level classes were trained with (as SD's x4 upscaler).
/// </summary>
[Flags]
public enum Trainable { None = 0, Unet = 1, TextEncoder = 2 }

/// <summary>Component folders that replace the pipeline's own (a checkpoint's unet/ or text_encoder/): config.json and
/// weights, read without a variant.</summary>
public sealed record ComponentOverrides(string? Unet = null, string? TextEncoder = null);

public sealed class StableDiffusionPipeline : IDisposable
{
    public static readonly string[] TokenizerFiles = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"];

    StableDiffusionPipeline(IBackend backend, ModelIndex index, string tokenizerDir, ClipTextConfig textConfig,
        UNet2DConditionConfig unetConfig, AutoencoderKLConfig? vaeConfig, SchedulerConfig scheduler,
        SchedulerConfig? lowResScheduler, Trainable trainable)
    {
        Backend = backend;
        Index = index;
        TokenizerDir = tokenizerDir;
        Tokenizer = ClipTokenizer.Load(tokenizerDir);
        TextEncoderConfig = textConfig;
        UnetConfig = unetConfig;
        VaeConfig = vaeConfig;
        SchedulerConfig = scheduler;
        LowResSchedulerConfig = lowResScheduler;
        TextEncoder = new ClipTextModel(textConfig);
        Unet = new UNet2DConditionModel(unetConfig);
        Vae = vaeConfig is null ? null : new AutoencoderKL(vaeConfig);
        TextEncoder.RequiresGrad(trainable.HasFlag(Trainable.TextEncoder));
        Unet.RequiresGrad(trainable.HasFlag(Trainable.Unet));
        Vae?.RequiresGrad(false);
        TextEncoderWeights = new ParameterStore(backend, TextEncoder);
        try
        {
            UnetWeights = new ParameterStore(backend, Unet);
            VaeWeights = Vae is null ? null : new ParameterStore(backend, Vae);
        }
        catch   // out of device memory for a later model: give back what the earlier ones took
        {
            TextEncoderWeights.Dispose();
            UnetWeights?.Dispose();
            throw;
        }
    }

    public IBackend Backend { get; }
    public ModelIndex Index { get; }
    public string TokenizerDir { get; }
    public ClipTokenizer Tokenizer { get; }
    public ClipTextConfig TextEncoderConfig { get; }
    public UNet2DConditionConfig UnetConfig { get; }
    public AutoencoderKLConfig? VaeConfig { get; }
    public SchedulerConfig SchedulerConfig { get; }
    /// <summary>A super-resolution stage's low_res_scheduler (the noise-level classes' schedule), when it has one.</summary>
    public SchedulerConfig? LowResSchedulerConfig { get; }
    public ClipTextModel TextEncoder { get; }
    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL? Vae { get; }
    public ParameterStore TextEncoderWeights { get; }
    public ParameterStore UnetWeights { get; }
    public ParameterStore? VaeWeights { get; }

    /// <summary>How many pixels one UNet sample covers along each side: 2^(VAE levels − 1), or 1 in pixel space.</summary>
    public int VaeScaleFactor => VaeConfig is null ? 1 : 1 << (VaeConfig.BlockOutChannels.Length - 1);

    /// <summary>Whether the UNet is a super-resolution stage's (it takes the low-res image and a noise-level class).</summary>
    public bool IsSuperResolution => SuperResolutionUNet.Describes(UnetConfig);

    /// <summary>The folder's configs with weights read from their safetensors (variant "fp16" picks *.fp16.safetensors);
    /// overrides replace the unet or text encoder with another folder's (a training checkpoint's).</summary>
    public static StableDiffusionPipeline Load(string dir, IBackend backend, string? variant = null,
        ComponentOverrides? overrides = null, Trainable trainable = Trainable.None)
    {
        var p = FromConfigs(dir, backend, overrides, trainable);
        try
        {
            StateDict.Load(p.TextEncoderWeights, overrides?.TextEncoder is { } te ? WeightsPath(te, variant: null, textEncoder: true)
                : WeightsPath(dir, "text_encoder", variant), ignore: ClipTextModel.BufferKeys);
            StateDict.Load(p.UnetWeights, overrides?.Unet is { } unet ? WeightsPath(unet, variant: null, textEncoder: false)
                : WeightsPath(dir, "unet", variant));
            if (p.VaeWeights is { } vae) StateDict.Load(vae, WeightsPath(dir, "vae", variant), AutoencoderKL.MapLegacyKey);
            return p;
        }
        catch
        {
            p.Dispose();
            throw;
        }
    }

    /// <summary>The folder's configs with random weights (each model's own init scheme), reproducible from the seed.</summary>
    public static StableDiffusionPipeline Initialize(string configDir, IBackend backend, ulong seed, Trainable trainable = Trainable.None)
    {
        var p = FromConfigs(configDir, backend, null, trainable);
        p.TextEncoderWeights.Initialize(seed);
        p.UnetWeights.Initialize(seed + 1);
        p.VaeWeights?.Initialize(seed + 2);
        return p;
    }

    /// <summary>Writes the whole pipeline in the diffusers layout; weights as F32, or F16 under the "fp16" variant. Each
    /// file is written to a temporary name and renamed, so an existing folder is never left half-written file by file.
    /// <paramref name="dtype"/> overrides the variant's dtype: F16 weights under the plain file names load without --variant.</summary>
    public void Save(string dir, string? variant = null, SafetensorsDType? dtype = null)
    {
        dtype ??= variant switch
        {
            null => SafetensorsDType.F32,
            "fp16" => SafetensorsDType.F16,
            "bf16" => SafetensorsDType.BF16,
            _ => throw new ArgumentException($"save: variant '{variant}' is not fp16 or bf16"),
        };
        foreach (var sub in new[] { "text_encoder", "tokenizer", "unet", "scheduler" }.Concat(Vae is null ? [] : ["vae"])
                     .Concat(LowResSchedulerConfig is null ? [] : ["low_res_scheduler"]))
            Directory.CreateDirectory(Path.Combine(dir, sub));
        Index.Save(Path.Combine(dir, "model_index.json"));
        TextEncoderConfig.Save(Path.Combine(dir, "text_encoder", "config.json"));
        UnetConfig.Save(Path.Combine(dir, "unet", "config.json"));
        VaeConfig?.Save(Path.Combine(dir, "vae", "config.json"));
        SchedulerConfig.Save(Path.Combine(dir, "scheduler", "scheduler_config.json"));
        LowResSchedulerConfig?.Save(Path.Combine(dir, "low_res_scheduler", "scheduler_config.json"));
        foreach (string file in TokenizerFiles)
        {
            string source = Path.Combine(TokenizerDir, file), target = Path.Combine(dir, "tokenizer", file);
            if (File.Exists(source) && Path.GetFullPath(source) != Path.GetFullPath(target)) AtomicFile.Write(target, temp => File.Copy(source, temp));
        }
        StateDict.Save(TextEncoderWeights, WeightsPath(dir, "text_encoder", variant), dtype.Value);
        StateDict.Save(UnetWeights, WeightsPath(dir, "unet", variant), dtype.Value);
        if (VaeWeights is { } vae) StateDict.Save(vae, WeightsPath(dir, "vae", variant), dtype.Value);
    }

    /// <summary>Where a component's weights live: diffusers names them model (transformers) or diffusion_pytorch_model.</summary>
    public static string WeightsPath(string dir, string component, string? variant) =>
        WeightsPath(Path.Combine(dir, component), variant, component == "text_encoder");

    /// <summary>The weights file inside one component folder.</summary>
    public static string WeightsPath(string componentDir, string? variant, bool textEncoder) =>
        Path.Combine(componentDir, (textEncoder ? "model" : "diffusion_pytorch_model") + (variant is null ? "" : "." + variant) + ".safetensors");

    /// <summary>Frees the text encoder's weights once its prompt embeddings are computed (a frozen encoder in training);
    /// the pipeline can no longer encode or save it.</summary>
    public void ReleaseTextEncoder() => TextEncoderWeights.Dispose();

    static StableDiffusionPipeline FromConfigs(string dir, IBackend backend, ComponentOverrides? overrides, Trainable trainable)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such model folder");
        var index = ModelIndex.Load(Path.Combine(dir, "model_index.json"));
        foreach (string needed in new[] { "text_encoder", "tokenizer", "unet", "scheduler" })
            if (index.Component(needed) is not { ClassName: not null })
                throw new InvalidDataException($"{Path.Combine(dir, "model_index.json")}: the pipeline has no '{needed}' component");
        bool hasVae = index.Component("vae") is { ClassName: not null };
        bool hasLowRes = index.Component("low_res_scheduler") is { ClassName: not null };
        return new StableDiffusionPipeline(backend, index, Path.Combine(dir, "tokenizer"),
            ClipTextConfig.Load(Path.Combine(overrides?.TextEncoder ?? Path.Combine(dir, "text_encoder"), "config.json")),
            UNet2DConditionConfig.Load(Path.Combine(overrides?.Unet ?? Path.Combine(dir, "unet"), "config.json")),
            hasVae ? AutoencoderKLConfig.Load(Path.Combine(dir, "vae", "config.json")) : null,
            SchedulerConfig.Load(Path.Combine(dir, "scheduler", "scheduler_config.json")),
            hasLowRes ? SchedulerConfig.Load(Path.Combine(dir, "low_res_scheduler", "scheduler_config.json")) : null, trainable);
    }

    public void Dispose()
    {
        TextEncoderWeights.Dispose();
        UnetWeights.Dispose();
        VaeWeights?.Dispose();
    }
}
