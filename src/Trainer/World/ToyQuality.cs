// How good the pretrained cascade is, measured with the analyser: prompt accuracy, diversity of "a star", and the SR stage.
using System.Globalization;
using System.Text;
using System.Text.Json;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;

namespace DreamBooth.Trainer.World;

/// <summary>
/// Accuracy (share of samples whose analysed attribute is the prompted one), the entropy in bits of each attribute
/// over samples of "a star" beside the world's own (uniform) entropy, and for the SR stage the share of upscaled samples
/// the analyser reads as it read their low-res input, and the edge sharpness of both against a clean render of the
/// analysed scene, summed over the samples (1 = as sharp as the renderer).
/// </summary>
public sealed record ToyQualityReport(double GuidanceScale, int Prompts, double Background, double Colour, double Shape,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> ShapeConfusion, int StarSamples,
    IReadOnlyDictionary<string, (double Observed, double World)> StarEntropy, int SrSamples, double SrAgreement,
    double SrSharpness, double UpsampledSharpness)
{
    public string ToMarkdown()
    {
        var s = new StringBuilder();
        string P(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture) + " %";
        string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        s.AppendLine($"| base model, {Prompts} prompts \"a COLOUR SHAPE on a COLOUR background\", guidance {F(GuidanceScale)} | accuracy | bar |");
        s.AppendLine("|---|---|---|");
        s.AppendLine($"| background colour | {P(Background)} | ≥ 95 % |");
        s.AppendLine($"| object colour | {P(Colour)} | ≥ 90 % |");
        s.AppendLine($"| shape | {P(Shape)} | ≥ 80 % |");
        s.AppendLine();
        var shapes = ToyWorld.Shapes.Select(ToyWorld.Name).ToList();
        s.AppendLine("| prompted shape ↓, analysed as → | " + string.Join(" | ", shapes) + " | right |");
        s.AppendLine("|---|" + string.Concat(shapes.Select(_ => "---|")) + "---|");
        foreach (var (asked, seen) in ShapeConfusion)
        {
            int total = seen.Values.Sum();
            s.AppendLine($"| {asked} | " + string.Join(" | ", shapes.Select(x => seen.GetValueOrDefault(x).ToString())) +
                         $" | {(total == 0 ? "–" : P((double)seen.GetValueOrDefault(asked) / total))} |");
        }
        s.AppendLine();
        s.AppendLine($"| \"a star\", {StarSamples} samples | entropy (bits) | the world's |");
        s.AppendLine("|---|---|---|");
        foreach (var (name, (observed, world)) in StarEntropy) s.AppendLine($"| {name} | {F(observed)} | {F(world)} |");
        if (SrSamples > 0)
        {
            s.AppendLine();
            s.AppendLine($"| super-resolution, {SrSamples} base samples upscaled 32→64 | value |");
            s.AppendLine("|---|---|");
            s.AppendLine($"| analyser agreement (background, colour and shape all unchanged) | {P(SrAgreement)} |");
            s.AppendLine($"| edge sharpness of the SR output against a clean 64×64 render | {F(SrSharpness)} |");
            s.AppendLine($"| edge sharpness of the base output upsampled (nearest) | {F(UpsampledSharpness)} |");
        }
        return s.ToString();
    }
}

public static class ToyQuality
{
    const int Steps = ToyEval.Steps;

    /// <summary>Samples of the base at classifier-free <paramref name="guidance"/> (the SR stage, prompted with "", is
    /// unguided whatever the scale), DDIM with <see cref="Steps"/> steps, seeds fixed.</summary>
    public static ToyQualityReport Measure(StableDiffusionPipeline baseModel, StableDiffusionPipeline? sr, int prompts, int starSamples, int srSamples,
        double guidance = ToyEval.Guidance)
    {
        int size = ToyModels.BaseSize;
        var scenes = Enumerable.Range(0, prompts).Select(i => ToyWorld.Sample(1234, i)).ToList();
        int bg = 0, colour = 0, shape = 0;
        var confusion = ToyWorld.Shapes.ToDictionary(x => ToyWorld.Name(x), _ => new Dictionary<string, int>());
        var generated = new List<(float[] Pixels, Analysis Analysis)>();
        ProgressBar.Run("quality: prompted samples", prompts, advance =>
        {
            for (int i = 0; i < prompts; i++)
            {
                var images = TextToImage.Generate(baseModel, new GenerationRequest(ToyWorld.Caption(scenes[i], 0), "", 1, Steps, guidance, Seed: (ulong)i));
                var pixels = Array.ConvertAll(images.Pixels, v => v * 2 - 1);
                var a = ToyAnalyser.Analyse(pixels, size);
                bg += a.Background == scenes[i].Background ? 1 : 0;
                colour += a.Colour == scenes[i].Colour ? 1 : 0;
                shape += a.Shape == scenes[i].Shape ? 1 : 0;
                var row = confusion[ToyWorld.Name(scenes[i].Shape)];
                row[ToyWorld.Name(a.Shape)] = row.GetValueOrDefault(ToyWorld.Name(a.Shape)) + 1;
                generated.Add((images.Pixels, a));
                advance(i + 1);
            }
        });

        var stars = TextToImage.Generate(baseModel, new GenerationRequest("a star", "", starSamples, Steps, guidance, Seed: 777));
        var starAnalyses = Enumerable.Range(0, starSamples)
            .Select(i => ToyAnalyser.Analyse(stars.Pixels[(i * 3 * size * size)..((i + 1) * 3 * size * size)].Select(v => v * 2 - 1).ToArray(), size)).ToList();
        double Log2(int n) => Math.Log2(n);
        var entropy = new Dictionary<string, (double, double)>
        {
            ["object colour"] = (Entropy(starAnalyses.Select(a => a.Colour)), Log2(ToyWorld.Palette.Length)),
            ["background colour"] = (Entropy(starAnalyses.Select(a => a.Background)), Log2(ToyWorld.Palette.Length)),
            ["position (3×3 cells)"] = (Entropy(starAnalyses.Select(a => Cell(a.X) * 3 + Cell(a.Y))), WorldPositionEntropy()),
            ["shape (star is asked)"] = (Entropy(starAnalyses.Select(a => (int)a.Shape)), 0),
        };

        double agreement = 0, srSharp = 0, upSharp = 0, reference = 0;
        int count = sr is null ? 0 : Math.Min(srSamples, generated.Count);
        if (sr is not null && count > 0)
        {
            var low = new GeneratedImages(generated.Take(count).SelectMany(g => g.Pixels).ToArray(), count, size, size);
            var high = Cascade.Upscale(sr, new GenerationRequest("", "", count, Steps, 1, Seed: 5), low, 1e-5);
            int hs = ToyModels.SrSize, plane = 3 * hs * hs;
            for (int i = 0; i < count; i++)
            {
                var up = high.Pixels[(i * plane)..((i + 1) * plane)].Select(v => v * 2 - 1).ToArray();
                var a = ToyAnalyser.Analyse(up, hs);
                var before = generated[i].Analysis;
                agreement += a.Background == before.Background && a.Colour == before.Colour && a.Shape == before.Shape ? 1 : 0;
                var clean = ToyWorld.Render(new Scene(a.Background, a.Colour, a.Shape, a.X, a.Y, a.Radius, a.Rotation), hs);
                reference += Sharpness(clean, hs);
                srSharp += Sharpness(up, hs);
                upSharp += Sharpness(ImageFolder.UpsampleNearest(generated[i].Pixels.Select(v => v * 2 - 1).ToArray(), size, hs / size), hs);
            }
        }
        return new ToyQualityReport(guidance, prompts, (double)bg / prompts, (double)colour / prompts, (double)shape / prompts,
            confusion.ToDictionary(kv => kv.Key, kv => (IReadOnlyDictionary<string, int>)kv.Value), starSamples, entropy,
            count, count == 0 ? 0 : agreement / count, reference == 0 ? 0 : srSharp / reference, reference == 0 ? 0 : upSharp / reference);
    }

    /// <summary>Writes quality.md and quality.json into <paramref name="dir"/>.</summary>
    public static void Write(ToyQualityReport report, string dir)
    {
        AtomicFile.Write(Path.Combine(dir, "quality.md"), temp => File.WriteAllText(temp, report.ToMarkdown()));
        AtomicFile.Write(Path.Combine(dir, "quality.json"), temp => File.WriteAllText(temp,
            JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, IncludeFields = true })));
    }

    static int Cell(double v) => Math.Clamp((int)(v * 3), 0, 2);

    static double Entropy(IEnumerable<int> values)
    {
        var counts = values.GroupBy(v => v).Select(g => (double)g.Count()).ToList();
        double total = counts.Sum();
        return 0.0 - counts.Sum(c => c / total * Math.Log2(c / total));   // 0.0 − 0 is +0, so one value prints as 0.00
    }

    /// <summary>The world's own entropy of the 3×3 position cell, from 20,000 star scenes.</summary>
    static double WorldPositionEntropy() =>
        Entropy(Enumerable.Range(0, 20000).Select(i => ToyWorld.Sample(55, i)).Select(s => Cell(s.X) * 3 + Cell(s.Y)));

    /// <summary>Mean gradient magnitude (central differences over the three channels): higher is sharper.</summary>
    static double Sharpness(float[] image, int size)
    {
        double total = 0;
        int plane = size * size;
        for (int c = 0; c < 3; c++)
        for (int y = 1; y < size - 1; y++)
        for (int x = 1; x < size - 1; x++)
        {
            int at = c * plane + y * size + x;
            double gx = image[at + 1] - image[at - 1], gy = image[at + size] - image[at - size];
            total += Math.Sqrt(gx * gx + gy * gy);
        }
        return total / (3.0 * (size - 2) * (size - 2));
    }
}
