// `dreambooth eval` on the toy world: the paper's Table 1 and 3 rows for one model and one subject, from the analyser.
using System.Globalization;
using System.Text;
using System.Text.Json;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;

namespace DreamBooth.Trainer.World;

/// <summary>One row of the tables: subject fidelity of "a [V] star" samples, prompt fidelity of "a [V] star on a
/// COLOUR background" samples over backgrounds never shown with the subject, PRES and DIV of "a star" samples. Null where
/// a row has no such samples (the real images have no prompts).</summary>
public sealed record EvalRow(string Name, double SubjectFidelity, double? PromptFidelity, double? Pres, double Div);

/// <summary>What one training run cost, from its log and last checkpoint: the trained parameters (the elements of the
/// first moments: AdamW's exp_avg, or AdamW8bit's state1 codes and f32 exp_avg), the optimizer state's bytes, the mean
/// seconds per step and the peak tensor memory.</summary>
public sealed record RunCost(string Name, long TrainedParameters, double OptimizerMib, double SecondsPerStep, double PeakMib)
{
    public static RunCost Read(string name, string runDir)
    {
        var checkpoint = Checkpoints.List(runDir) is { Count: > 0 } all ? all[^1].Dir
            : throw new InvalidDataException($"{runDir}: no checkpoint to read the optimizer state from");
        long trained, bytes;
        using (var file = SafetensorsFile.Open(Path.Combine(checkpoint, "optimizer.safetensors")))
        {
            trained = file.Tensors.Where(t => t.Name.Split('.')[0] is "exp_avg" or "state1").Sum(t => t.ElementCount);
            bytes = file.Tensors.Sum(t => t.ByteCount);
        }
        var last = System.Text.Json.Nodes.JsonNode.Parse(File.ReadLines(Path.Combine(runDir, "logs", "train.jsonl")).Last())!;
        return new RunCost(name, trained, bytes / 1048576.0, 1 / last["it_per_s"]!.GetValue<double>(), last["memory_mib"]!.GetValue<double>());
    }
}

public static class ToyEval
{
    public const int Steps = 25;
    public const double Guidance = 3;

    /// <summary>metrics.md and metrics.json in <paramref name="dir"/>, each written atomically.</summary>
    public static void Write(string dir, string title, IReadOnlyList<EvalRow> rows, IReadOnlyList<(string Name, double Fidelity)> srRows,
        IReadOnlyList<RunCost>? costs = null)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.Write(Path.Combine(dir, "metrics.md"), temp => File.WriteAllText(temp, $"# {title}\n\n" + Markdown(rows, srRows, costs)));
        AtomicFile.Write(Path.Combine(dir, "metrics.json"), temp => File.WriteAllText(temp, JsonSerializer.Serialize(
            new { rows, sr = srRows.Select(r => new { name = r.Name, subject_fidelity = r.Fidelity }), costs = costs ?? [] },
            new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })));
    }

    /// <summary>The subject's images at any size, as features.</summary>
    public static List<SubjectFeatures> Subject(string dir)
    {
        var files = ImageFolder.List(dir, "--subject");
        if (files.Length == 0) throw new InvalidDataException($"--subject {dir}: no images");
        return files.Select(f =>
        {
            var image = ImageFolder.Load(f, ImageSize(f));
            return ToyMetrics.Features(image.Pixels, image.Height);
        }).ToList();
    }

    static int ImageSize(string path)   // from the header alone
    {
        var info = SixLabors.ImageSharp.Image.Identify(path) ?? throw new InvalidDataException($"{path}: not a readable image");
        return Math.Min(info.Width, info.Height);
    }

    /// <summary>The upper bound: fidelity of each real image to the others, and their diversity.</summary>
    public static EvalRow Real(IReadOnlyList<SubjectFeatures> subject) =>
        new("real images", subject.SelectMany((a, i) => subject.Where((_, j) => j != i).Select(b => ToyMetrics.Similarity(a, b))).Average(),
            null, null, ToyMetrics.Diversity(subject));

    /// <summary>Samples of the model (base stage, 32×32) for the three prompt kinds, analysed. The prompted backgrounds
    /// are the palette colours no real image of the subject stands on, taken in turn. Also returns the "a [V] class"
    /// images, which the SR rows upscale (so they are drawn once).</summary>
    public static (EvalRow Row, GeneratedImages SubjectImages) Evaluate(string name, StableDiffusionPipeline model,
        IReadOnlyList<SubjectFeatures> subject, int samples, ulong seed, string identifier = ToySubject.Identifier,
        string classNoun = ToySubject.ClassNoun)
    {
        var subjectImages = TextToImage.Generate(model, new GenerationRequest($"a {identifier} {classNoun}", "", samples, Steps, Guidance, Seed: seed));
        var subjectSamples = Features(subjectImages);
        var unseen = UnseenBackgrounds(subject);
        if (unseen.Count == 0) throw new InvalidDataException("the subject's images stand on every background colour; none is left to prompt");
        var prompted = Enumerable.Range(0, samples).Select(i => unseen[i % unseen.Count]).ToList();
        var inContext = prompted.Select((c, i) =>
            Sample(model, $"a {identifier} {classNoun} on a {ToyWorld.Palette[c].Name} background", 1, seed + 1000 + (ulong)i)[0]).ToList();
        var classSamples = Sample(model, $"a {classNoun}", samples, seed + 2000);
        return (new EvalRow(name, ToyMetrics.Fidelity(subjectSamples, subject), ToyMetrics.PromptFidelity(inContext, prompted),
            ToyMetrics.Fidelity(classSamples, subject), ToyMetrics.Diversity(classSamples)), subjectImages);
    }

    /// <summary>The palette colours (indices) that no real image of the subject has as its background.</summary>
    public static List<int> UnseenBackgrounds(IReadOnlyList<SubjectFeatures> subject) =>
        Enumerable.Range(0, ToyWorld.Palette.Length).Where(c => subject.All(f => f.Background != c)).ToList();

    /// <summary>The SR stage's row: <paramref name="lowRes"/> (base samples of "a [V] class") upscaled at the noise
    /// level <paramref name="level"/>, and the subject fidelity of the 64×64 results.</summary>
    public static (double Fidelity, GeneratedImages Upscaled) EvaluateSr(StableDiffusionPipeline sr, GeneratedImages lowRes, double level,
        IReadOnlyList<SubjectFeatures> subject, ulong seed, string identifier = ToySubject.Identifier, string classNoun = ToySubject.ClassNoun)
    {
        var high = Cascade.Upscale(sr, new GenerationRequest($"a {identifier} {classNoun}", "", lowRes.Count, Steps, Guidance, Seed: seed), lowRes, level);
        return (ToyMetrics.Fidelity(Features(high), subject), high);
    }

    public static List<SubjectFeatures> Sample(StableDiffusionPipeline model, string prompt, int count, ulong seed)
    {
        var images = TextToImage.Generate(model, new GenerationRequest(prompt, "", count, Steps, Guidance, Seed: seed));
        return Features(images);
    }

    public static List<SubjectFeatures> Features(GeneratedImages images)
    {
        int plane = 3 * images.Height * images.Width;
        return Enumerable.Range(0, images.Count)
            .Select(i => ToyMetrics.Features(images.Pixels[(i * plane)..((i + 1) * plane)].Select(v => v * 2 - 1).ToArray(), images.Height)).ToList();
    }

    /// <summary>The tables as Markdown: the base rows, then the SR rows when there are any.</summary>
    public static string Markdown(IEnumerable<EvalRow> rows, IReadOnlyList<(string Name, double Fidelity)> srRows, IReadOnlyList<RunCost>? costs = null)
    {
        string F(double? v) => v is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "–";
        var s = new StringBuilder();
        s.AppendLine("| model | subject fidelity ↑ | prompt fidelity ↑ | PRES ↓ | DIV ↑ |");
        s.AppendLine("|---|---|---|---|---|");
        foreach (var r in rows) s.AppendLine($"| {r.Name} | {F(r.SubjectFidelity)} | {F(r.PromptFidelity)} | {F(r.Pres)} | {F(r.Div)} |");
        if (srRows.Count > 0)
        {
            s.AppendLine().AppendLine("| super-resolution stage | subject fidelity at 64×64 ↑ |").AppendLine("|---|---|");
            foreach (var (name, fidelity) in srRows) s.AppendLine($"| {name} | {F(fidelity)} |");
        }
        if (costs is { Count: > 0 })
        {
            s.AppendLine().AppendLine("| training run | trained parameters | AdamW state | time per step | peak tensor memory |").AppendLine("|---|---|---|---|---|");
            foreach (var c in costs)
                s.AppendLine(FormattableString.Invariant($"| {c.Name} | {c.TrainedParameters:N0} | {c.OptimizerMib:F2} MiB | {c.SecondsPerStep:F3} s | {c.PeakMib:F0} MiB |"));
        }
        return s.ToString();
    }
}
