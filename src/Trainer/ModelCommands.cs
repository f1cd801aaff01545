// `inspect`, `init-model` and `sample`: look into a model, make one with random weights, and draw images from it.
using System.CommandLine;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;

namespace DreamBooth.Trainer;

public static partial class ModelCommands
{
    public static Command Inspect()
    {
        var path = new Argument<string>("path") { Description = "A model folder (model_index.json), one component folder, or a .safetensors file" };
        var command = new Command("inspect", "Print configs, tensors and dtypes, parameter counts per component, and check weights against configs.") { path };
        command.SetAction(parse => Guard.Run("inspect", () =>
        {
            var report = Inspector.Inspect(parse.GetValue(path)!);
            foreach (string line in report.Lines) Console.WriteLine(line);
            foreach (string problem in report.Problems) Console.Error.WriteLine($"dreambooth inspect: {problem}");
            return report.Problems.Count == 0 ? 0 : 1;
        }));
        return command;
    }

    public static Command InitModel()
    {
        var config = new Option<string>("--config") { Description = "Folder of configs in the diffusers layout (e.g. configs/tiny-sd)", Required = true };
        var output = new Option<string>("--output") { Description = "Folder to write the pipeline to", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 0 };
        var variant = new Option<string?>("--variant") { Description = "Write weights as fp16 or bf16 (*.VARIANT.safetensors)" };
        variant.AcceptOnlyFromAmong("fp16", "bf16");
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a non-empty --output folder (its whole content) with the new pipeline" };
        var device = new DeviceOption();
        var command = new Command("init-model", "Write a pipeline with random weights (each model's own init scheme) from a folder of configs.")
        {
            config, output, seed, variant, overwrite, device,
        };
        command.SetAction(parse => Guard.Run("init-model", () =>
        {
            string dir = parse.GetValue(output)!;
            Guard.ExpectEmpty("--output", dir, parse.GetValue(overwrite), "its content");
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
            using (var pipeline = StableDiffusionPipeline.Initialize(parse.GetValue(config)!, backend, parse.GetValue(seed)))
            {
                SaveWhole(pipeline, dir, parse.GetValue(variant));
                long total = pipeline.TextEncoderWeights.Length + pipeline.UnetWeights.Length + (pipeline.VaeWeights?.Length ?? 0);
                Console.WriteLine($"wrote {dir}: {total:N0} parameters, seed {parse.GetValue(seed)}");
            }
            return 0;
        }));
        return command;
    }

    public static Command Convert()
    {
        var from = new Option<string>("--from") { Description = "A diffusers folder, or a single-file .safetensors checkpoint in the original SD (LDM) layout", Required = true };
        var to = new Option<string>("--to") { Description = "The single .safetensors file to write, or the diffusers folder (new or empty)", Required = true };
        var config = new Option<string?>("--config") { Description = "From a single file: a diffusers folder of the same architecture, whose configs, tokenizer and scheduler are copied" };
        var command = new Command("convert", "Convert between a diffusers folder and one .safetensors in the original Stable Diffusion (LDM) key layout that SD 1.x apps load; tensors are copied bit for bit.")
        {
            from, to, config,
        };
        command.SetAction(parse => Guard.Run("convert", () =>
        {
            string source = parse.GetValue(from)!, target = parse.GetValue(to)!;
            if (Directory.Exists(source))
            {
                if (!File.Exists(Path.Combine(source, "model_index.json"))) throw new FileNotFoundException($"--from {source}: no model_index.json; not a pipeline folder");
                if (!target.EndsWith(".safetensors")) throw new ArgumentException($"--to {target}: a single file's name ends in .safetensors");
                if (File.Exists(target)) throw new IOException($"{target} already exists; choose another file");
                int tensors = SingleFile.Write(source, target);
                Console.WriteLine($"wrote {target}: {tensors} tensors in the single-file layout");
                return 0;
            }
            if (!File.Exists(source)) throw new FileNotFoundException($"--from {source}: no such folder or file");
            string configDir = parse.GetValue(config) ?? throw new ArgumentException("--config is needed to read a single file: a diffusers folder of the same architecture");
            if (!File.Exists(Path.Combine(configDir, "model_index.json"))) throw new FileNotFoundException($"--config {configDir}: no model_index.json; not a pipeline folder");
            bool created = Guard.PrepareOutput("--to", target, overwrite: false);
            // written beside the target and moved in whole, so a failure never leaves half a pipeline
            string full = Path.GetFullPath(Path.TrimEndingDirectorySeparator(target));
            string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
            try
            {
                int count = SingleFile.Read(source, configDir, temp);
                Directory.Delete(full);
                Directory.Move(temp, full);
                Console.WriteLine($"wrote {target}: {count} tensors in the diffusers layout, configs from {configDir}");
            }
            catch
            {
                if (created) Guard.RemoveIfEmpty(full);
                throw;
            }
            finally { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); }
            return 0;
        }));
        return command;
    }

    public static Command Sample()
    {
        var model = new Option<string>("--model") { Description = "Pipeline folder in the diffusers layout, or a single-file SD 1.x checkpoint", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "What to draw", Required = true };
        var negative = new Option<string>("--negative-prompt") { Description = "What to steer away from (the unconditional branch)", DefaultValueFactory = _ => "" };
        var count = new Option<int>("--num-images") { Description = "Images to draw", DefaultValueFactory = _ => 4 };
        var steps = new Option<int>("--steps") { Description = "Denoising steps", DefaultValueFactory = _ => 50 };
        var guidance = new Option<double>("--guidance-scale") { Description = "Classifier-free guidance weight (≤ 1 turns it off)", DefaultValueFactory = _ => 7.5 };
        var scheduler = new Option<string?>("--scheduler") { Description = "Sampler; default: the one the scheduler config names" };
        scheduler.AcceptOnlyFromAmong(DreamBooth.Models.Schedulers.SchedulerFactory.SamplerNames);
        var eta = new Option<double>("--eta") { Description = "DDIM's η (0 = deterministic)", DefaultValueFactory = _ => 0 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of all random draws", DefaultValueFactory = _ => 0 };
        var height = new Option<int?>("--height") { Description = "Pixels; default: the UNet's sample_size × the VAE factor" };
        var width = new Option<int?>("--width") { Description = "Pixels; default: as height" };
        var variant = new Option<string?>("--variant") { Description = "Read *.VARIANT.safetensors weights (e.g. fp16)" };
        var output = new Option<string>("--output") { Description = "Folder for the PNGs and grid.png", Required = true };
        var unet = new Option<string?>("--unet") { Description = "A unet/ folder that replaces the model's (e.g. OUTPUT/checkpoint-400/unet)" };
        var textEncoder = new Option<string?>("--text_encoder", "--text-encoder") { Description = "A text_encoder/ folder that replaces the model's" };
        var srModel = new Option<string?>("--sr_model", "--sr-model") { Description = "A super-resolution stage's folder: upscale the samples with it (a cascade)" };
        var srNoise = new Option<double>("--sr_noise_level", "--sr-noise-level")
        { Description = "Noise variance added to the low-res input of the SR stage (see train-sr)", DefaultValueFactory = _ => 1e-5 };
        var srSteps = new Option<int?>("--sr_steps", "--sr-steps") { Description = "Denoising steps of the SR stage; default: --steps" };
        var lora = LoraOption();
        var loraScale = LoraScaleOption();
        var overwrite = new Option<bool>("--overwrite") { Description = "Sample into a non-empty --output: an earlier sample's PNGs there are removed first" };
        var device = new DeviceOption();
        var command = new Command("sample", "Draw images from a pipeline (or a cascade of a base model and an SR stage): PNGs, and a grid of them.")
        {
            model, prompt, negative, count, steps, guidance, scheduler, eta, seed, height, width, variant, output, unet, textEncoder, lora, loraScale,
            srModel, srNoise, srSteps, overwrite, device,
        };
        command.SetAction(parse => Guard.Run("sample", () =>
        {
            string dir = parse.GetValue(output)!;
            bool created = Guard.PrepareOutput("--output", dir, parse.GetValue(overwrite));
            try { return Draw(parse, dir); }
            catch { if (created) Guard.RemoveIfEmpty(dir); throw; }
        }));
        return command;

        int Draw(ParseResult parse, string dir)
        {
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
            using (var source = ModelSource.Open(parse.GetValue(model)!, "--model"))
            using (var pipeline = StableDiffusionPipeline.Load(source.Folder, backend, parse.GetValue(variant),
                       new ComponentOverrides(parse.GetValue(unet), parse.GetValue(textEncoder))))
            using (var adapters = parse.GetValue(lora) is { } loraFile ? LoraFile.Load(loraFile, pipeline, parse.GetValue(loraScale)) : null)
            using (var sr = parse.GetValue(srModel) is { } srDir ? StableDiffusionPipeline.Load(srDir, backend) : null)
            {
                if (pipeline.IsSuperResolution)
                    throw new ArgumentException($"--model {parse.GetValue(model)}: a super-resolution stage; pass a base model, and this one with --sr_model");
                if (sr is { IsSuperResolution: false })
                    throw new ArgumentException($"--sr_model {parse.GetValue(srModel)}: its UNet is not a super-resolution stage's");
                PromptLength.Warn(pipeline.Tokenizer, "--prompt", parse.GetValue(prompt)!);
                PromptLength.Warn(pipeline.Tokenizer, "--negative-prompt", parse.GetValue(negative)!);
                var request = new GenerationRequest(parse.GetValue(prompt)!, parse.GetValue(negative)!, parse.GetValue(count),
                    parse.GetValue(steps), parse.GetValue(guidance), parse.GetValue(scheduler), parse.GetValue(eta), parse.GetValue(seed),
                    parse.GetValue(height), parse.GetValue(width) ?? parse.GetValue(height));
                GeneratedImages images = null!;
                ProgressBar.Run($"sampling on {backend.Name}", request.Steps,
                    advance => images = TextToImage.Generate(pipeline, request, (done, _) => advance(done)));
                if (sr is not null)
                {
                    var srRequest = request with { Steps = parse.GetValue(srSteps) ?? request.Steps, Height = null, Width = null };
                    var low = images;
                    ProgressBar.Run("super-resolution", srRequest.Steps,
                        advance => images = Cascade.Upscale(sr, srRequest, low, parse.GetValue(srNoise), (done, _) => advance(done)));
                }
                var (pixels, n, h, w) = images;
                foreach (string stale in Directory.GetFiles(dir, "*.png").Where(f => SampleFile().IsMatch(Path.GetFileName(f)))) File.Delete(stale);
                for (int i = 0; i < n; i++) Images.SavePng(Path.Combine(dir, $"{i:D3}.png"), pixels, i, h, w);
                Images.SaveGrid(Path.Combine(dir, "grid.png"), pixels, n, h, w);
                Console.WriteLine($"wrote {n} images ({w}×{h}) and grid.png to {dir}; peak {backend.Name} tensor memory " +
                                  $"{backend.Memory.PeakBytes / (1024.0 * 1024):F0} MiB");
            }
            return 0;
        }
    }

    static Option<string?> LoraOption() => new("--lora")
    {
        Description = "LoRA adapters to apply: a .safetensors file (diffusers', peft's or kohya's keys), or a LoRA run's folder or checkpoint",
    };

    static Option<double> LoraScaleOption() => new("--lora_scale", "--lora-scale")
    {
        Description = "Strength of the LoRA update (diffusers' lora_scale): 0 is the base model, 1 the trained adapters", DefaultValueFactory = _ => 1.0,
    };

    public static Command MergeLora()
    {
        var model = new Option<string>("--model") { Description = "The base pipeline the adapters were trained on: a folder, or a single-file SD 1.x checkpoint", Required = true };
        var lora = LoraOption();
        lora.Required = true;
        var loraScale = LoraScaleOption();
        var output = new Option<string>("--output") { Description = "Folder to write the merged pipeline to (new or empty)", Required = true };
        var variant = new Option<string?>("--variant") { Description = "Write the merged weights as fp16 or bf16 (*.VARIANT.safetensors); default F32" };
        variant.AcceptOnlyFromAmong("fp16", "bf16");
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a non-empty --output folder (its whole content)" };
        var device = new DeviceOption();
        var command = new Command("merge-lora", "Fold LoRA adapters into the weights (W += scale·(α/r)·B·A): a full pipeline that loads without them.")
        {
            model, lora, loraScale, output, variant, overwrite, device,
        };
        command.SetAction(parse => Guard.Run("merge-lora", () =>
        {
            string dir = parse.GetValue(output)!;
            Guard.ExpectEmpty("--output", dir, parse.GetValue(overwrite), "its content");
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
            using (var source = ModelSource.Open(parse.GetValue(model)!, "--model"))
            using (var pipeline = StableDiffusionPipeline.Load(source.Folder, backend))
            {
                using (var adapters = LoraFile.Load(parse.GetValue(lora)!, pipeline, parse.GetValue(loraScale)))
                {
                    adapters.Weights.Merge();
                    Console.Error.WriteLine($"merged {adapters.Weights.Networks().Sum(n => n.Network.Adapters.Count)} adapters ({adapters.Layout} layout)");
                }
                SaveWhole(pipeline, dir, parse.GetValue(variant));
                Console.WriteLine($"wrote {dir}: {parse.GetValue(model)} with the adapters merged");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Writes the pipeline beside <paramref name="dir"/> and swaps it in whole: a failed run never leaves files of
    /// two models mixed.</summary>
    static void SaveWhole(StableDiffusionPipeline pipeline, string dir, string? variant)
    {
        string full = Path.GetFullPath(Path.TrimEndingDirectorySeparator(dir));
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            pipeline.Save(temp, variant);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(temp, full);
        }
        finally { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); }
    }

    /// <summary>The files sample writes: NNN.png and grid.png.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^(\d{3,}|grid)\.png$")]
    private static partial System.Text.RegularExpressions.Regex SampleFile();
}
