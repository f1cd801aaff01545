// `dreambooth eval`: the paper's Table 1 and 3 (subject fidelity, prompt fidelity, PRES, DIV) for toy-world models and a subject.
using System.CommandLine;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Trainer.World;

namespace DreamBooth.Trainer;

public static class EvalCommand
{
    public static Command Create()
    {
        var models = new Option<string[]>("--model") { Description = "Base-stage pipeline folders of the toy world, one table row each", Required = true, AllowMultipleArgumentsPerToken = true };
        var subject = new Option<string>("--subject", "--instance_data_dir") { Description = "Folder of the subject's real images", Required = true };
        var identifier = new Option<string>("--identifier") { Description = "The rare token the subject was trained under", DefaultValueFactory = _ => ToySubject.Identifier };
        var classNoun = new Option<string>("--class_noun", "--class-noun") { Description = "The subject's class", DefaultValueFactory = _ => ToySubject.ClassNoun };
        var loras = new Option<string[]>("--lora")
        { Description = "LoRA adapters (files, or LoRA runs' folders) on the first --model: a row each", AllowMultipleArgumentsPerToken = true };
        var srModels = new Option<string[]>("--sr_model", "--sr-model")
        { Description = "Super-resolution stage folders: each upscales the first model's \"a [V] class\" samples (a row each)", AllowMultipleArgumentsPerToken = true };
        var srNoise = new Option<double>("--sr_noise_level", "--sr-noise-level") { Description = "Noise variance added to the SR stages' low-res input", DefaultValueFactory = _ => 1e-5 };
        var samples = new Option<int>("--samples") { Description = "Samples per prompt", DefaultValueFactory = _ => 16 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of every sample", DefaultValueFactory = _ => 0 };
        var output = new Option<string?>("--output", "--output_dir") { Description = "Also write metrics.md and metrics.json here" };
        var device = new DeviceOption();
        var command = new Command("eval", "The paper's metrics on the toy world, from its analyser: subject fidelity, prompt fidelity, PRES and DIV per model.")
        {
            models, subject, identifier, classNoun, loras, srModels, srNoise, samples, seed, output, device,
        };
        command.SetAction(parse => Guard.Run("eval", () =>
        {
            var modelDirs = parse.GetValue(models)!;
            var srDirs = parse.GetValue(srModels) ?? [];
            var loraFiles = (parse.GetValue(loras) ?? []).Select(LoraFile.Resolve).ToList();   // a missing one fails now
            foreach (string dir in modelDirs.Concat(srDirs))
                if (!File.Exists(Path.Combine(dir, "model_index.json"))) throw new DirectoryNotFoundException($"{dir}: no model_index.json; not a pipeline folder");
            if (parse.GetValue(samples) < 2) throw new ArgumentException($"--samples must be at least 2 (DIV compares pairs), got {parse.GetValue(samples)}");
            if (parse.GetValue(output) is { } outDir)
            {
                Guard.ExpectFolder("--output", outDir);
                foreach (string file in new[] { "metrics.md", "metrics.json" })
                    if (File.Exists(Path.Combine(outDir, file))) throw new IOException($"--output {outDir} already holds {file}; choose another folder or remove it");
                Guard.Writable("--output", outDir);   // before the sampling, not after it
            }
            var real = ToyEval.Subject(parse.GetValue(subject)!);
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
            {
                string id = parse.GetValue(identifier)!, noun = parse.GetValue(classNoun)!;
                int n = parse.GetValue(samples);
                ulong s = parse.GetValue(seed);
                var rows = new List<EvalRow> { ToyEval.Real(real) };
                GeneratedImages? subjectSamples = null;
                foreach (string dir in modelDirs)
                {
                    Console.Error.WriteLine($"eval: sampling {dir}");
                    using var model = StableDiffusionPipeline.Load(dir, backend);
                    var (row, images) = ToyEval.Evaluate(dir, model, real, n, s, id, noun);
                    rows.Add(row);
                    subjectSamples ??= images;   // the first model's "a [V] class" samples are what the SR stages upscale
                }
                foreach (string file in loraFiles)
                {
                    Console.Error.WriteLine($"eval: sampling {modelDirs[0]} with {file}");
                    using var model = StableDiffusionPipeline.Load(modelDirs[0], backend);
                    using var adapters = LoraFile.Load(file, model);
                    rows.Add(ToyEval.Evaluate(file, model, real, n, s, id, noun).Row);
                }
                var srRows = new List<(string Name, double Fidelity)>();
                foreach (string dir in srDirs)
                {
                    Console.Error.WriteLine($"eval: upscaling with {dir}");
                    using var sr = StableDiffusionPipeline.Load(dir, backend);
                    srRows.Add((dir, ToyEval.EvaluateSr(sr, subjectSamples!, parse.GetValue(srNoise), real, s + 13, id, noun).Fidelity));
                }
                if (parse.GetValue(output) is { } outputDir) ToyEval.Write(outputDir, "dreambooth eval", rows, srRows);
                Console.WriteLine(ToyEval.Markdown(rows, srRows));
            }
            return 0;
        }));
        return command;
    }
}
