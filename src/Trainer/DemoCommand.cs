// `dreambooth demo`: the whole method on the embedded toy cascade, with train's own code, measured the paper's way.
using System.CommandLine;
using System.Diagnostics;
using DreamBooth.Kernels;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Trainer.World;

namespace DreamBooth.Trainer;

/// <summary>How much the demo trains and samples; the defaults fit the 5-minute budget on 2 cores.</summary>
public sealed record DemoSettings(int Steps = 200, int SrSteps = 120, int ClassImages = 16, int Samples = 8, double LearningRate = 1e-4,
    double SrLearningRate = 1e-4, ulong Seed = 0, double LoraLearningRate = TrainCommandLine.LoraLearningRate, int LoraRank = 4);

public static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output", "--output_dir") { Description = "Folder of the demo's results", DefaultValueFactory = _ => "demo-output" };
        var baseModel = new Option<string>("--base") { Description = "The pretrained base stage", DefaultValueFactory = _ => Path.Combine("models", "toy", "base") };
        var srModel = new Option<string>("--sr") { Description = "The pretrained super-resolution stage", DefaultValueFactory = _ => Path.Combine("models", "toy", "sr") };
        var steps = new Option<int>("--steps") { Description = "DreamBooth steps of each base run", DefaultValueFactory = _ => new DemoSettings().Steps };
        var srSteps = new Option<int>("--sr_steps", "--sr-steps") { Description = "Steps of each SR fine-tune", DefaultValueFactory = _ => new DemoSettings().SrSteps };
        var samples = new Option<int>("--samples") { Description = "Samples per prompt in the metrics", DefaultValueFactory = _ => new DemoSettings().Samples };
        var seed = new Option<ulong>("--seed") { Description = "Seed of every run and sample", DefaultValueFactory = _ => 0 };
        var device = new DeviceOption();
        var command = new Command("demo", "DreamBooth end to end on the embedded toy cascade: with and without prior preservation, SR fine-tuning, metrics and a grid.")
        {
            output, baseModel, srModel, steps, srSteps, samples, seed, device,
        };
        command.SetAction(parse => Guard.Run("demo", () =>
        {
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
                Run(parse.GetValue(output)!, parse.GetValue(baseModel)!, parse.GetValue(srModel)!, backend,
                    new DemoSettings(parse.GetValue(steps), parse.GetValue(srSteps), Samples: parse.GetValue(samples), Seed: parse.GetValue(seed)));
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// 1. the subject's four instance images (64×64); 2. DreamBooth on the base stage with prior preservation (its class
    /// images generated first by train's own step) and without; 3. the SR stage fine-tuned on the subject at the paper's
    /// high (1e-3) and low (1e-5) augmentation levels; 4. the metrics of every model, the grid and the tables.
    /// </summary>
    public static void Run(string output, string baseModel, string srModel, IBackend backend, DemoSettings s)
    {
        foreach (string model in new[] { baseModel, srModel })
            if (!File.Exists(Path.Combine(model, "model_index.json")))
                throw new DirectoryNotFoundException($"{model}: the embedded toy model is missing (run the demo from the repository's root)");
        PrepareOutput(output);
        var clock = Stopwatch.StartNew();
        string subject = Path.Combine(output, "subject"), runs = Path.Combine(output, "runs");
        ToySubject.WriteInstances(subject, ToyModels.SrSize);

        TrainOptions DreamBooth(string name, bool prior) => new()
        {
            Model = baseModel, Concepts = [new Concept(subject, $"a {ToySubject.Identifier} {ToySubject.ClassNoun}", Path.Combine(output, "class-images"),
                $"a {ToySubject.ClassNoun}")],
            WithPriorPreservation = prior, NumClassImages = s.ClassImages, ClassInferenceSteps = ToyEval.Steps, ClassGuidanceScale = ToyEval.Guidance,
            SampleBatchSize = 8, CenterCrop = true, TrainBatchSize = 4, MaxTrainSteps = s.Steps, LearningRate = s.LearningRate, LrWarmupSteps = 0,
            CheckpointingSteps = s.Steps, ValidationSteps = s.Steps, Seed = s.Seed, OutputDir = Path.Combine(runs, name),
        };
        TrainCommands.Run(DreamBooth("prior", prior: true), backend, superResolution: false);
        TrainCommands.Run(DreamBooth("no-prior", prior: false), backend, superResolution: false);
        TrainCommands.Run(DreamBooth("lora", prior: true) with { UseLora = true, Rank = s.LoraRank, LearningRate = s.LoraLearningRate }, backend,
            superResolution: false);

        TrainOptions Sr(string name, double level) => new()
        {
            Model = srModel, Concepts = [new Concept(subject, $"a {ToySubject.Identifier} {ToySubject.ClassNoun}", null, null)],
            Resolution = ToyModels.SrSize, LowResResolution = ToyModels.BaseSize, NoiseLevel = level, CenterCrop = true, TrainBatchSize = 4,
            MaxTrainSteps = s.SrSteps, LearningRate = s.SrLearningRate, LrWarmupSteps = 0, CheckpointingSteps = s.SrSteps,
            ValidationSteps = s.SrSteps, Seed = s.Seed, OutputDir = Path.Combine(runs, name),
        };
        TrainCommands.Run(Sr("sr-1e-3", 1e-3), backend, superResolution: true);
        TrainCommands.Run(Sr("sr-1e-5", 1e-5), backend, superResolution: true);

        Evaluate(output, baseModel, srModel, subject, runs, backend, s);
        Console.Error.WriteLine($"demo finished in {clock.Elapsed:mm\\:ss}; results in {output}: grid.png, metrics.md, metrics.json, runs/*/logs");
    }

    /// <summary>The demo owns its output folder: a previous demo's is replaced, any other non-empty folder is refused.</summary>
    static void PrepareOutput(string output)
    {
        Guard.ExpectFolder("--output", output);
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
        {
            if (!File.Exists(Path.Combine(output, "metrics.json")) && !Directory.Exists(Path.Combine(output, "runs")))
                throw new IOException($"--output {output} is not empty and holds no earlier demo; choose another folder");
            Console.Error.WriteLine($"{output}: replacing the earlier demo's results");
            Directory.Delete(output, recursive: true);
        }
        Guard.Writable("--output", output);
    }

    static void Evaluate(string output, string baseModel, string srModel, string subjectDir, string runs, IBackend backend, DemoSettings s)
    {
        var subject = ToyEval.Subject(subjectDir);
        var rows = new List<EvalRow> { ToyEval.Real(subject) };
        var tiles = new List<float[]>();   // 64×64 tiles of the grid, 4 per row
        void Row(GeneratedImages images) { foreach (var tile in Tiles(images)) tiles.Add(tile); }
        foreach (string file in ImageFolder.List(subjectDir, "subject")) tiles.Add(ImageFolder.Load(file, ToyModels.SrSize).Pixels.Select(v => v * 0.5f + 0.5f).ToArray());

        var unseen = ToyEval.UnseenBackgrounds(subject).Take(4).ToList();
        GeneratedImages subjectSamples = null!;
        string prior = Path.Combine(runs, "prior"), lora = Path.Combine(runs, "lora");
        // Each model's table row, and its grid rows: "a star" (drift), the unseen backgrounds (context), and the samples the SR rows upscale.
        foreach (var (name, dir, adapters, classRow, contextRow, srInput) in new (string, string, string?, bool, bool, bool)[]
                 {
                     ("base, before DreamBooth", baseModel, null, true, false, false),
                     ("DreamBooth without prior preservation", Path.Combine(runs, "no-prior"), null, true, false, false),
                     ("DreamBooth with prior preservation", prior, null, true, true, true),
                     ($"DreamBooth with prior preservation, LoRA rank {s.LoraRank}", baseModel, lora, false, true, false),
                 })
        {
            using var model = StableDiffusionPipeline.Load(dir, backend);
            using var attached = adapters is null ? null : LoraFile.Load(adapters, model);
            var (row, images) = ToyEval.Evaluate(name, model, subject, s.Samples, s.Seed);
            rows.Add(row);
            if (classRow) Row(TextToImage.Generate(model, new GenerationRequest($"a {ToySubject.ClassNoun}", "", 4, ToyEval.Steps, ToyEval.Guidance, Seed: s.Seed + 7)));
            if (contextRow)
                foreach (int c in unseen)
                    Row(TextToImage.Generate(model, new GenerationRequest($"a {ToySubject.Identifier} {ToySubject.ClassNoun} on a {ToyWorld.Palette[c].Name} background",
                        "", 1, ToyEval.Steps, ToyEval.Guidance, Seed: s.Seed + (ulong)c)));
            if (!srInput) continue;
            // The SR rows upscale (up to) the first 4 of the evaluated "a [V] star" samples: one grid row.
            int shown = Math.Min(4, images.Count), plane = 3 * images.Height * images.Width;
            subjectSamples = images with { Pixels = images.Pixels[..(shown * plane)], Count = shown };
        }

        var srRows = new List<(string Name, double Fidelity)>();
        foreach (var (name, dir, level) in new[] { ("SR not fine-tuned", srModel, 1e-5), ("SR fine-tuned at 1e-3", Path.Combine(runs, "sr-1e-3"), 1e-3),
                     ("SR fine-tuned at 1e-5", Path.Combine(runs, "sr-1e-5"), 1e-5) })
        {
            using var sr = StableDiffusionPipeline.Load(dir, backend);
            var (fidelity, high) = ToyEval.EvaluateSr(sr, subjectSamples, level, subject, s.Seed + 13);
            srRows.Add((name, fidelity));
            Row(high);
        }

        var grid = tiles.SelectMany(t => t).ToArray();
        Images.SaveGrid(Path.Combine(output, "grid.png"), grid, tiles.Count, ToyModels.SrSize, ToyModels.SrSize, columns: 4);
        var costs = new[] { ("full fine-tuning", prior), ($"LoRA rank {s.LoraRank}", lora) }.Select(r => RunCost.Read(r.Item1, r.Item2)).ToList();
        ToyEval.Write(output, "DreamBooth on the toy world", rows, srRows, costs);
        Console.WriteLine(ToyEval.Markdown(rows, srRows, costs));
    }

    /// <summary>Each image of a batch as a 64×64 tile in [0, 1] (32×32 samples repeated 2×2, nearest).</summary>
    static IEnumerable<float[]> Tiles(GeneratedImages images)
    {
        int plane = 3 * images.Height * images.Width;
        for (int i = 0; i < images.Count; i++)
            yield return ImageFolder.UpsampleNearest(images.Pixels.AsSpan(i * plane, plane), images.Height, ToyModels.SrSize / images.Height);
    }
}
