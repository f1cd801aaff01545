// The paper's subject fidelity, prompt fidelity, PRES and DIV, with exact analogues computed by the toy world's analyser.
namespace DreamBooth.Trainer.World;

/// <summary>An image's features: the share of its object's pixels nearest to each palette colour, its shape, and the
/// fine-pattern energy inside it (mean |Laplacian| over the object's pixels whose four neighbours are object pixels too).</summary>
public sealed record SubjectFeatures(double[] ColourShares, Shape Shape, double Pattern, int Background);

/// <summary>
/// DreamBooth's metrics (Ruiz et al. 2023, Table 1 and 3) on the toy world. The paper used DINO and CLIP embeddings and
/// LPIPS; here the analyser gives exact features, fixed and documented:
///   similarity(a, b) = ½·(1 − ½·Σ|colour shares a − b|) + ¼·[same shape] + ¼·(1 − |pattern a − pattern b| / (pattern a + pattern b))
/// which is 1 for identical objects and falls with each difference in colours, shape or fine pattern.
///   subject fidelity (DINO / CLIP-I analogue)  mean similarity of generated subject images to the real instance images
///   prompt fidelity (CLIP-T analogue)          share of samples whose background is the prompted colour
///   PRES                                       subject fidelity of class-prompt samples ("a star"): lower is better
///   DIV (LPIPS analogue)                       mean pairwise 1 − similarity between samples of one prompt: higher is better
/// </summary>
public static class ToyMetrics
{
    public static SubjectFeatures Features(float[] image, int size)   // (3, size, size) in [−1, 1]
    {
        var a = ToyAnalyser.Analyse(image, size);
        int n = size * size;
        var shares = new double[ToyWorld.Palette.Length];
        int count = 0;
        double pattern = 0;
        int interior = 0;
        for (int i = 0; i < n; i++)
        {
            if (a.Coverage[i] < 0.5f) continue;
            count++;
            var rgb = ((image[i] + 1) * 127.5, (image[n + i] + 1) * 127.5, (image[2 * n + i] + 1) * 127.5);
            shares[ToyAnalyser.Nearest(rgb)]++;
            int x = i % size, y = i / size;
            if (x == 0 || y == 0 || x == size - 1 || y == size - 1) continue;
            if (a.Coverage[i - 1] < 0.5f || a.Coverage[i + 1] < 0.5f || a.Coverage[i - size] < 0.5f || a.Coverage[i + size] < 0.5f) continue;
            double laplacian = 0;
            for (int c = 0; c < 3; c++)
            {
                int at = c * n + i;
                laplacian += Math.Abs(4 * image[at] - image[at - 1] - image[at + 1] - image[at - size] - image[at + size]) / 8;
            }
            pattern += laplacian / 3;
            interior++;
        }
        if (count > 0) for (int k = 0; k < shares.Length; k++) shares[k] /= count;
        return new SubjectFeatures(shares, a.Shape, interior == 0 ? 0 : pattern / interior, a.Background);
    }

    public static double Similarity(SubjectFeatures a, SubjectFeatures b)
    {
        double colour = 1 - 0.5 * a.ColourShares.Zip(b.ColourShares, (x, y) => Math.Abs(x - y)).Sum();
        double pattern = a.Pattern + b.Pattern < 1e-9 ? 1 : 1 - Math.Abs(a.Pattern - b.Pattern) / (a.Pattern + b.Pattern);
        return 0.5 * colour + 0.25 * (a.Shape == b.Shape ? 1 : 0) + 0.25 * pattern;
    }

    /// <summary>Mean similarity of every generated image to every real one.</summary>
    public static double Fidelity(IReadOnlyList<SubjectFeatures> generated, IReadOnlyList<SubjectFeatures> real) =>
        generated.SelectMany(g => real.Select(r => Similarity(g, r))).Average();

    /// <summary>Mean 1 − similarity over the pairs of samples of one prompt.</summary>
    public static double Diversity(IReadOnlyList<SubjectFeatures> samples)
    {
        double total = 0;
        int pairs = 0;
        for (int i = 0; i < samples.Count; i++)
        for (int j = i + 1; j < samples.Count; j++) { total += 1 - Similarity(samples[i], samples[j]); pairs++; }
        return pairs == 0 ? 0 : total / pairs;
    }

    /// <summary>Share of samples whose analysed background is the prompted palette colour.</summary>
    public static double PromptFidelity(IReadOnlyList<SubjectFeatures> samples, IReadOnlyList<int> promptedBackgrounds) =>
        samples.Zip(promptedBackgrounds, (s, b) => s.Background == b ? 1.0 : 0.0).Average();
}
