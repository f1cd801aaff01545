// The options of `train` and `train-sr`, spelled as diffusers' train_dreambooth.py spells them, and their validation.
using System.CommandLine;
using System.CommandLine.Parsing;
using DreamBooth.Kernels;

namespace DreamBooth.Trainer;

/// <summary>One subject: its images and prompt, and the class images and prompt that keep the class's prior.</summary>
public sealed record Concept(string InstanceDataDir, string InstancePrompt, string? ClassDataDir, string? ClassPrompt);

/// <summary>Everything a training run is configured with; the defaults are diffusers' train_dreambooth.py defaults.</summary>
public sealed record TrainOptions
{
    public required string Model { get; init; }
    public string? Variant { get; init; }
    public string? SingleFileConfig { get; init; }
    public required IReadOnlyList<Concept> Concepts { get; init; }
    public bool WithPriorPreservation { get; init; }
    public double PriorLossWeight { get; init; } = 1.0;
    public int NumClassImages { get; init; } = 100;
    public int SampleBatchSize { get; init; } = 4;
    public string? ClassScheduler { get; init; }
    public int ClassInferenceSteps { get; init; } = 50;
    public double ClassGuidanceScale { get; init; } = 7.5;
    public string? PriorGenerationPrecision { get; init; }
    public int? Resolution { get; init; }
    public bool CenterCrop { get; init; }
    public bool RandomFlip { get; init; }
    public int TrainBatchSize { get; init; } = 4;
    public int NumTrainEpochs { get; init; } = 1;
    public int? MaxTrainSteps { get; init; }
    public int GradientAccumulationSteps { get; init; } = 1;
    public bool GradientCheckpointing { get; init; }
    public bool SaveSingleFile { get; init; }

    /// <summary>The compute dtype that --mixed_precision (and --prior_generation_precision) names: fp16, bf16, else f32.</summary>
    public static DType ComputeDType(string? precision) => precision switch { "fp16" => DType.F16, "bf16" => DType.BF16, _ => DType.F32 };

    /// <summary>Where --save_single_file writes: beside the output folder, named after it.</summary>
    public string SingleFilePath => Path.TrimEndingDirectorySeparator(Path.GetFullPath(OutputDir)) + ".safetensors";
    public double LearningRate { get; init; } = 5e-6;
    public bool ScaleLr { get; init; }
    public string LrScheduler { get; init; } = "constant";
    public int LrWarmupSteps { get; init; } = 500;
    public int LrNumCycles { get; init; } = 1;
    public double LrPower { get; init; } = 1.0;
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamWeightDecay { get; init; } = 1e-2;
    public double AdamEpsilon { get; init; } = 1e-8;
    public bool Use8bitAdam { get; init; }
    public double MaxGradNorm { get; init; } = 1.0;
    public bool TrainTextEncoder { get; init; }
    public bool UseLora { get; init; }
    public int Rank { get; init; } = 4;
    public double? LoraAlpha { get; init; }
    public double LoraDropout { get; init; }
    public string MixedPrecision { get; init; } = "no";
    public bool OffsetNoise { get; init; }
    public double? SnrGamma { get; init; }
    public int CheckpointingSteps { get; init; } = 500;
    public int? CheckpointsTotalLimit { get; init; }
    public string? ResumeFromCheckpoint { get; init; }
    public string? ValidationPrompt { get; init; }
    public int NumValidationImages { get; init; } = 4;
    public int ValidationSteps { get; init; } = 100;
    public string? ValidationScheduler { get; init; }
    public ulong? Seed { get; init; }
    public string OutputDir { get; init; } = "dreambooth-model";
    /// <summary>train-sr only: the low-res input's noise variance (see LowResAugmentation) and its size in pixels.</summary>
    public double NoiseLevel { get; init; } = 1e-5;
    public int? LowResResolution { get; init; }
    /// <summary>Images whose header declares more pixels are refused before decoding.</summary>
    public long MaxImagePixels { get; init; } = ImageFolder.DefaultMaxPixels;
    /// <summary>Check every op's output and gradient for NaN/Inf and stop at the first (slow; for debugging).</summary>
    public bool DetectAnomaly { get; init; }
}

/// <summary>
/// The command line of `train` and `train-sr`. Every option has diffusers' name (--instance_data_dir) and the dashed
/// spelling (--instance-data-dir); System.CommandLine takes both --opt value and --opt=value. Options of
/// train_dreambooth.py that mean nothing here are accepted and each prints one line saying so; any other unknown option
/// is an error naming the nearest known one.
/// </summary>
public sealed class TrainCommandLine
{
    readonly List<Option> _all = [];
    readonly List<Option> _ignored = [];
    readonly bool _superResolution;

    public Option<string> Model { get; }
    public Option<string?> Variant { get; }
    public Option<string?> SingleFileConfig { get; }
    public Option<string?> InstanceDataDir { get; }
    public Option<string?> InstancePrompt { get; }
    public Option<string?> ClassDataDir { get; }
    public Option<string?> ClassPrompt { get; }
    public Option<string?> ConceptsList { get; }
    public Option<bool> WithPriorPreservation { get; }
    public Option<double> PriorLossWeight { get; }
    public Option<int> NumClassImages { get; }
    public Option<int> SampleBatchSize { get; }
    public Option<string?> ClassScheduler { get; }
    public Option<int> ClassInferenceSteps { get; }
    public Option<double> ClassGuidanceScale { get; }
    public Option<string?> PriorGenerationPrecision { get; }
    public Option<int?> Resolution { get; }
    public Option<bool> CenterCrop { get; }
    public Option<bool> RandomFlip { get; }
    public Option<int> TrainBatchSize { get; }
    public Option<int> NumTrainEpochs { get; }
    public Option<int?> MaxTrainSteps { get; }
    public Option<int> GradientAccumulationSteps { get; }
    public Option<bool> GradientCheckpointing { get; }
    public Option<bool> SaveSingleFile { get; }
    public Option<double> LearningRate { get; }
    public Option<bool> ScaleLr { get; }
    public Option<string> LrScheduler { get; }
    public Option<int> LrWarmupSteps { get; }
    public Option<int> LrNumCycles { get; }
    public Option<double> LrPower { get; }
    public Option<double> AdamBeta1 { get; }
    public Option<double> AdamBeta2 { get; }
    public Option<double> AdamWeightDecay { get; }
    public Option<double> AdamEpsilon { get; }
    public Option<bool> Use8bitAdam { get; }
    public Option<double> MaxGradNorm { get; }
    public Option<bool> TrainTextEncoder { get; }
    public Option<bool> UseLora { get; }
    public Option<int> Rank { get; }
    public Option<double?> LoraAlpha { get; }
    public Option<double> LoraDropout { get; }
    public Option<string?> MixedPrecision { get; }
    public Option<bool> OffsetNoise { get; }
    public Option<double?> SnrGamma { get; }
    public Option<int> CheckpointingSteps { get; }
    public Option<int?> CheckpointsTotalLimit { get; }
    public Option<string?> ResumeFromCheckpoint { get; }
    public Option<string?> ValidationPrompt { get; }
    public Option<int> NumValidationImages { get; }
    public Option<int> ValidationSteps { get; }
    public Option<string?> ValidationScheduler { get; }
    public Option<ulong?> Seed { get; }
    public Option<string> OutputDir { get; }
    public Option<double> NoiseLevel { get; }
    public Option<int?> LowResResolution { get; }
    public Option<long> MaxImagePixels { get; }
    public Option<bool> DetectAnomaly { get; }
    public DeviceOption Device { get; } = new();

    public TrainCommandLine(bool superResolution)
    {
        _superResolution = superResolution;
        Model = Add<string>("pretrained_model_name_or_path", "A local diffusers model folder (model_index.json), or a single-file SD 1.x " +
                                                             "checkpoint (.safetensors, the original LDM layout); a hub id must be downloaded first");
        Model.Required = true;
        Variant = Add<string?>("variant", "Read *.VARIANT.safetensors weights (fp16, bf16)");
        SingleFileConfig = Add<string?>("single_file_config", "A diffusers folder of the single file's architecture, whose configs and tokenizer " +
                                                              "it is read with; default: configs/sd15 (SD 1.x)");
        InstanceDataDir = Add<string?>("instance_data_dir", "Folder of the subject's images (JPEG, PNG, WebP, BMP)");
        InstancePrompt = Add<string?>("instance_prompt", "Prompt naming the subject, e.g. \"a photo of sks dog\"");
        ClassDataDir = Add<string?>("class_data_dir", "Folder of class images; the missing ones are generated");
        ClassPrompt = Add<string?>("class_prompt", "Prompt of the class, e.g. \"a photo of dog\"");
        ConceptsList = Add<string?>("concepts_list", "JSON list of {instance_prompt, class_prompt, instance_data_dir, class_data_dir}: several subjects in one run");
        WithPriorPreservation = Add<bool>("with_prior_preservation", "Add the class-image loss that keeps the class's prior");
        PriorLossWeight = Add("prior_loss_weight", "λ, the weight of the prior-preservation loss", 1.0);
        NumClassImages = Add("num_class_images", "Class images wanted in --class_data_dir (the shortfall is generated)", 100);
        SampleBatchSize = Add("sample_batch_size", "Images per batch when generating class images", 4);
        ClassScheduler = Add<string?>("class_scheduler", "Sampler of class-image generation (ddim, ddpm, euler_a); default: the model's");
        ClassInferenceSteps = Add("class_inference_steps", "Denoising steps per class image", 50);
        ClassGuidanceScale = Add("class_guidance_scale", "Classifier-free guidance of class-image generation", 7.5);
        PriorGenerationPrecision = Add<string?>("prior_generation_precision", "Precision of class-image generation: no, fp32, fp16, bf16");
        PriorGenerationPrecision.AcceptOnlyFromAmong("no", "fp32", "fp16", "bf16");
        Resolution = Add<int?>("resolution", "Training images' side in pixels; default: the UNet's sample_size × the VAE factor");
        CenterCrop = Add<bool>("center_crop", "Centre-crop after resizing (default: a random crop)");
        RandomFlip = Add<bool>("random_flip", "Flip images horizontally at random");
        TrainBatchSize = Add("train_batch_size", "Instance examples per step (as many class examples join them)", 4);
        NumTrainEpochs = Add("num_train_epochs", "Epochs, when --max_train_steps is not given", 1);
        MaxTrainSteps = Add<int?>("max_train_steps", "Optimizer steps; overrides --num_train_epochs");
        GradientAccumulationSteps = Add("gradient_accumulation_steps", "Micro-batches per optimizer step", 1);
        GradientCheckpointing = Add<bool>("gradient_checkpointing", "Recompute block activations in backward to save memory");
        SaveSingleFile = Add<bool>("save_single_file", "At the end, also write OUTPUT_DIR.safetensors in the original SD (LDM) layout that SD 1.x apps load " +
                                                          "(with --use_lora: the adapters under kohya's lora_unet_ names)");
        LearningRate = Add("learning_rate", "Base learning rate", 5e-6);
        ScaleLr = Add<bool>("scale_lr", "Multiply the learning rate by accumulation steps × batch size");
        LrScheduler = Add("lr_scheduler", "constant, constant_with_warmup, linear, cosine, cosine_with_restarts or polynomial", "constant");
        LrScheduler.AcceptOnlyFromAmong([.. DreamBooth.Autograd.LrSchedule.Names]);
        LrWarmupSteps = Add("lr_warmup_steps", "Warm-up steps of the LR schedule", 500);
        LrNumCycles = Add("lr_num_cycles", "Hard restarts of cosine_with_restarts", 1);
        LrPower = Add("lr_power", "Power of the polynomial schedule", 1.0);
        AdamBeta1 = Add("adam_beta1", "AdamW β1", 0.9);
        AdamBeta2 = Add("adam_beta2", "AdamW β2", 0.999);
        AdamWeightDecay = Add("adam_weight_decay", "AdamW weight decay", 1e-2);
        AdamEpsilon = Add("adam_epsilon", "AdamW ε", 1e-8);
        Use8bitAdam = Add<bool>("use_8bit_adam", "AdamW with 8-bit block-wise quantised moments (bitsandbytes' AdamW8bit): " +
                                                 "about 2 bytes of optimizer state per parameter instead of 8");
        MaxGradNorm = Add("max_grad_norm", "Clip the global gradient norm to this", 1.0);
        TrainTextEncoder = Add<bool>("train_text_encoder", "Fine-tune the text encoder too (same optimizer, fp32 masters)");
        UseLora = Add<bool>("use_lora", "Train LoRA adapters on the attention projections instead of the weights (train_dreambooth_lora.py); " +
                                        "writes pytorch_lora_weights.safetensors; the learning rate defaults to 5e-4");
        Rank = Add("rank", "--use_lora: the adapters' rank r", 4);
        LoraAlpha = Add<double?>("lora_alpha", "--use_lora: α, the update is scaled by α / r; default: the rank");
        LoraDropout = Add("lora_dropout", "--use_lora: dropout probability of the adapters' input in training", 0.0);
        MixedPrecision = Add<string?>("mixed_precision", "no, fp16 (dynamic loss scaling) or bf16");
        MixedPrecision.AcceptOnlyFromAmong("no", "fp16", "bf16");
        OffsetNoise = Add<bool>("offset_noise", "Add 0.1·N(0,1) per (sample, channel) to the noise");
        SnrGamma = Add<double?>("snr_gamma", "Min-SNR weighting γ of the instance loss (5.0 is the paper's)");
        CheckpointingSteps = Add("checkpointing_steps", "Write output_dir/checkpoint-STEP every this many steps", 500);
        CheckpointsTotalLimit = Add<int?>("checkpoints_total_limit", "Keep at most this many checkpoints (the oldest go)");
        ResumeFromCheckpoint = Add<string?>("resume_from_checkpoint", "\"latest\" or a checkpoint folder name: continue that run exactly");
        ValidationPrompt = Add<string?>("validation_prompt", "Prompt drawn at fixed seeds into validation/step-N.png");
        NumValidationImages = Add("num_validation_images", "Images per validation grid", 4);
        ValidationSteps = Add("validation_steps", "Draw the validation grid every this many steps", 100);
        ValidationScheduler = Add<string?>("validation_scheduler", "Sampler of validation images; default: the model's");
        Seed = Add<ulong?>("seed", "Seed of every random draw (data order, noise, crops); default: a random one, printed");
        OutputDir = Add("output_dir", "Folder of the checkpoints, logs and the final model", "dreambooth-model");
        NoiseLevel = Add("noise_level", "train-sr: noise variance added to the low-res input (Imagen's augmentation; 1e-5 keeps detail)", 1e-5);
        LowResResolution = Add<int?>("low_res_resolution", "train-sr: the low-res input's side in pixels; default: resolution / 4");
        DetectAnomaly = Add<bool>("detect_anomaly", "Stop at the first op whose output or gradient is NaN or Inf, naming it and its shape (slow)");
        MaxImagePixels = Add("max_image_pixels", "Refuse an image whose header declares more pixels than this (decompression bombs)", ImageFolder.DefaultMaxPixels);
        _all.Add(Device);
        _all.Add(Device.AllowTf32);
        if (!superResolution) _all.RemoveAll(x => x == NoiseLevel || x == LowResResolution);
        else _all.Remove(SaveSingleFile);   // an SR stage's UNet (low-res input, noise-level classes) has no SD 1.x layout

        foreach (string flag in new[] { "push_to_hub", "enable_xformers_memory_efficient_attention",
                     "set_grads_to_none", "pre_compute_text_embeddings", "text_encoder_use_attention_mask", "skip_save_text_encoder" })
            Ignore(new Option<bool>("--" + flag, "--" + flag.Replace('_', '-')));
        foreach (string valued in new[] { "hub_token", "hub_model_id", "logging_dir", "report_to", "local_rank", "revision",
                     "tokenizer_name", "dataloader_num_workers", "tokenizer_max_length", "class_labels_conditioning" })
            Ignore(new Option<string?>("--" + valued, "--" + valued.Replace('_', '-')));
        Ignore(new Option<string[]?>("--validation_images", "--validation-images") { AllowMultipleArgumentsPerToken = true });
    }

    /// <summary>The sub-command with every option; its action gets the validated options.</summary>
    public Command Build(string name, string description, Func<TrainOptions, DreamBooth.Kernels.IBackend, int> run)
    {
        var command = new Command(name, description) { TreatUnmatchedTokensAsErrors = false };
        foreach (var option in _all.Concat(_ignored)) command.Options.Add(option);
        command.SetAction(parse => Guard.Run(name, () =>
        {
            if (parse.UnmatchedTokens.Count > 0) throw new ArgumentException(Unknown(parse.UnmatchedTokens[0]));
            foreach (var option in _ignored.Where(o => parse.GetResult(o) is { Implicit: false }))
                Console.Error.WriteLine($"dreambooth {name}: {option.Name} is ignored here (no hub, trackers or xformers in this trainer)");
            var options = Read(parse);
            if (!Device.TryOpen(parse, out var backend)) return 1;
            using (backend) return run(options, backend);
        }));
        return command;
    }

    /// <summary>"unknown option --foo; did you mean --bar?" with the known option nearest by edit distance.</summary>
    string Unknown(string token)
    {
        string bare = token.Split('=')[0];
        if (!bare.StartsWith('-')) return $"unexpected argument '{token}'";
        string key = bare.TrimStart('-').Replace('-', '_');
        var nearest = _all.Concat(_ignored).Select(o => o.Name).MinBy(n => EditDistance(n.TrimStart('-'), key))!;
        return $"unknown option {bare}; did you mean {nearest}?";
    }

    /// <summary>Levenshtein distance: the fewest single-character edits that turn a into b.</summary>
    internal static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    TrainOptions Read(ParseResult p)
    {
        var o = new TrainOptions
        {
            Model = p.GetValue(Model)!,
            Variant = p.GetValue(Variant),
            SingleFileConfig = p.GetValue(SingleFileConfig),
            Concepts = ReadConcepts(p),
            WithPriorPreservation = p.GetValue(WithPriorPreservation),
            PriorLossWeight = p.GetValue(PriorLossWeight),
            NumClassImages = p.GetValue(NumClassImages),
            SampleBatchSize = p.GetValue(SampleBatchSize),
            ClassScheduler = SamplerName(p.GetValue(ClassScheduler), "--class_scheduler"),
            ClassInferenceSteps = p.GetValue(ClassInferenceSteps),
            ClassGuidanceScale = p.GetValue(ClassGuidanceScale),
            PriorGenerationPrecision = p.GetValue(PriorGenerationPrecision),
            Resolution = p.GetValue(Resolution),
            CenterCrop = p.GetValue(CenterCrop),
            RandomFlip = p.GetValue(RandomFlip),
            TrainBatchSize = p.GetValue(TrainBatchSize),
            NumTrainEpochs = p.GetValue(NumTrainEpochs),
            MaxTrainSteps = p.GetValue(MaxTrainSteps),
            GradientAccumulationSteps = p.GetValue(GradientAccumulationSteps),
            GradientCheckpointing = p.GetValue(GradientCheckpointing),
            SaveSingleFile = p.GetValue(SaveSingleFile),
            LearningRate = p.GetResult(LearningRate) is { Implicit: false } || !p.GetValue(UseLora) ? p.GetValue(LearningRate) : LoraLearningRate,
            ScaleLr = p.GetValue(ScaleLr),
            LrScheduler = p.GetValue(LrScheduler)!,
            LrWarmupSteps = p.GetValue(LrWarmupSteps),
            LrNumCycles = p.GetValue(LrNumCycles),
            LrPower = p.GetValue(LrPower),
            AdamBeta1 = p.GetValue(AdamBeta1),
            AdamBeta2 = p.GetValue(AdamBeta2),
            AdamWeightDecay = p.GetValue(AdamWeightDecay),
            AdamEpsilon = p.GetValue(AdamEpsilon),
            Use8bitAdam = p.GetValue(Use8bitAdam),
            MaxGradNorm = p.GetValue(MaxGradNorm),
            TrainTextEncoder = p.GetValue(TrainTextEncoder),
            UseLora = p.GetValue(UseLora),
            Rank = p.GetValue(Rank),
            LoraAlpha = p.GetValue(LoraAlpha),
            LoraDropout = p.GetValue(LoraDropout),
            MixedPrecision = p.GetValue(MixedPrecision) ?? "no",
            OffsetNoise = p.GetValue(OffsetNoise),
            SnrGamma = p.GetValue(SnrGamma),
            CheckpointingSteps = p.GetValue(CheckpointingSteps),
            CheckpointsTotalLimit = p.GetValue(CheckpointsTotalLimit),
            ResumeFromCheckpoint = p.GetValue(ResumeFromCheckpoint),
            ValidationPrompt = p.GetValue(ValidationPrompt),
            NumValidationImages = p.GetValue(NumValidationImages),
            ValidationSteps = p.GetValue(ValidationSteps),
            ValidationScheduler = SamplerName(p.GetValue(ValidationScheduler), "--validation_scheduler"),
            Seed = p.GetValue(Seed),
            OutputDir = p.GetValue(OutputDir)!,
            NoiseLevel = p.GetValue(NoiseLevel),
            LowResResolution = p.GetValue(LowResResolution),
            MaxImagePixels = p.GetValue(MaxImagePixels),
            DetectAnomaly = p.GetValue(DetectAnomaly),
        };
        Validate(o, p);
        return o;
    }

    /// <summary>One concept from the four options, or the --concepts_list file's entries.</summary>
    IReadOnlyList<Concept> ReadConcepts(ParseResult p)
    {
        if (p.GetValue(ConceptsList) is not { } file)
        {
            string dir = p.GetValue(InstanceDataDir) ?? throw new ArgumentException("--instance_data_dir is required (or --concepts_list)");
            string prompt = p.GetValue(InstancePrompt) ?? throw new ArgumentException("--instance_prompt is required (or --concepts_list)");
            return [new Concept(dir, prompt, p.GetValue(ClassDataDir), p.GetValue(ClassPrompt))];
        }
        if (p.GetValue(InstanceDataDir) is not null || p.GetValue(InstancePrompt) is not null)
            throw new ArgumentException("--concepts_list replaces --instance_data_dir and --instance_prompt; give one or the other");
        return ConceptsFile.Load(file);
    }

    /// <summary>Our sampler names, or diffusers' scheduler class names mapped onto them.</summary>
    static string? SamplerName(string? name, string option) => name switch
    {
        null => null,
        "ddim" or "DDIMScheduler" => "ddim",
        "ddpm" or "DDPMScheduler" => "ddpm",
        "euler_a" or "EulerAncestralDiscreteScheduler" => "euler_a",
        "DPMSolverMultistepScheduler" or "PNDMScheduler" => Substitute(option, name),
        _ => throw new ArgumentException($"{option} {name}: choose ddim, ddpm or euler_a (or their diffusers class names)"),
    };

    static string Substitute(string option, string name)
    {
        Console.Error.WriteLine($"dreambooth: {option} {name} is not implemented here; sampling with ddim instead");
        return "ddim";
    }

    /// <summary>train_dreambooth_lora.py's default learning rate, used under --use_lora unless --learning_rate is given.</summary>
    public const double LoraLearningRate = 5e-4;

    void Validate(TrainOptions o, ParseResult p)
    {
        void Positive(int value, string option) { if (value < 1) throw new ArgumentException($"--{option} must be ≥ 1, got {value}"); }
        Positive(o.TrainBatchSize, "train_batch_size");
        Positive(o.NumTrainEpochs, "num_train_epochs");
        Positive(o.GradientAccumulationSteps, "gradient_accumulation_steps");
        Positive(o.CheckpointingSteps, "checkpointing_steps");
        Positive(o.ValidationSteps, "validation_steps");
        Positive(o.NumValidationImages, "num_validation_images");
        Positive(o.SampleBatchSize, "sample_batch_size");
        Positive(o.ClassInferenceSteps, "class_inference_steps");
        if (o.MaxTrainSteps is { } steps) Positive(steps, "max_train_steps");
        if (o.CheckpointsTotalLimit is { } limit) Positive(limit, "checkpoints_total_limit");
        if (o.Resolution is { } r) Positive(r, "resolution");
        if (o.LowResResolution is { } lr) Positive(lr, "low_res_resolution");
        if (o.NumClassImages < 0) throw new ArgumentException($"--num_class_images must be ≥ 0, got {o.NumClassImages}");
        if (!(o.LearningRate >= 0)) throw new ArgumentException($"--learning_rate must be ≥ 0, got {o.LearningRate}");
        if (!(o.MaxGradNorm > 0)) throw new ArgumentException($"--max_grad_norm must be > 0, got {o.MaxGradNorm}");
        if (o.UseLora)
        {
            Positive(o.Rank, "rank");
            if (o.LoraAlpha is { } alpha && !(alpha > 0)) throw new ArgumentException($"--lora_alpha must be > 0, got {alpha}");
            if (!(o.LoraDropout >= 0 && o.LoraDropout < 1)) throw new ArgumentException($"--lora_dropout must be in [0, 1), got {o.LoraDropout}");
        }
        else if (p.GetResult(Rank) is { Implicit: false } || p.GetResult(LoraAlpha) is { Implicit: false } || p.GetResult(LoraDropout) is { Implicit: false })
            throw new ArgumentException("--rank, --lora_alpha and --lora_dropout set a LoRA run's adapters; add --use_lora");
        if (o.SnrGamma is { } g && !(g > 0)) throw new ArgumentException($"--snr_gamma must be > 0, got {g}");
        if (!(o.NoiseLevel >= 0 && o.NoiseLevel < 1)) throw new ArgumentException($"--noise_level must be a variance in [0, 1), got {o.NoiseLevel}");
        if (o.WithPriorPreservation)
        {
            if (_superResolution)
                throw new ArgumentException("train-sr fine-tunes on (low-res, high-res) pairs of the subject only; --with_prior_preservation belongs to train");
            foreach (var c in o.Concepts)
            {
                if (c.ClassDataDir is null) throw new ArgumentException("--with_prior_preservation needs --class_data_dir (a folder for the class images)");
                if (c.ClassPrompt is null) throw new ArgumentException("--with_prior_preservation needs --class_prompt (e.g. \"a photo of dog\")");
            }
        }
        else if (o.Concepts.Any(c => c.ClassDataDir is not null || c.ClassPrompt is not null))
            Console.Error.WriteLine("dreambooth: --class_data_dir and --class_prompt are unused without --with_prior_preservation");
    }

    Option<T> Add<T>(string name, string description, T defaultValue)
    {
        var option = Add<T>(name, description);
        option.DefaultValueFactory = _ => defaultValue;
        return option;
    }

    Option<T> Add<T>(string name, string description)
    {
        var option = new Option<T>("--" + name, "--" + name.Replace('_', '-')) { Description = description };
        _all.Add(option);
        return option;
    }

    void Ignore(Option option)
    {
        option.Description = "Accepted for diffusers compatibility and ignored";
        option.Hidden = true;
        _ignored.Add(option);
    }
}
