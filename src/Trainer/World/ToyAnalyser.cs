// Reads a toy-world image back into its attributes, from the renderer's own knowledge: plain background, one object.
namespace DreamBooth.Trainer.World;

/// <summary>What the analyser read: palette indices of background and object colour, the shape and its pose (image-side
/// units, as <see cref="Scene"/>), the object's coverage per pixel (size × size, 0..1), and how far the best shape
/// template is from that coverage (mean absolute difference per pixel; small for a clean render).</summary>
public sealed record Analysis(int Background, int Colour, Shape Shape, double X, double Y, double Radius, double Rotation,
    float[] Coverage, double TemplateError, (double R, double G, double B) ObjectRgb);

public static class ToyAnalyser
{
    /// <summary>
    /// 1. The background colour is the per-channel median of the border pixels, named by the nearest palette colour.
    /// 2. The object colour is the median of the pixels farthest from the background (the upper half by distance among
    ///    those that differ clearly), named likewise.
    /// 3. Each pixel's coverage is its distance from the background colour over the object colour's, both less twice
    ///    the border's median distance (the noise floor; 0 on a clean render): anti-aliased edges give fractions, and a
    ///    patterned object's other colours count as covered. The centroid and area of the coverage give the position
    ///    and, per shape, the radius.
    /// 4. The shape is the template, rendered at that pose over the rotations of its symmetry period, closest to the
    ///    coverage.
    /// </summary>
    public static Analysis Analyse(float[] image, int size)   // (3, size, size) in [−1, 1]
    {
        int n = size * size;
        var rgb = new (double R, double G, double B)[n];
        for (int i = 0; i < n; i++) rgb[i] = ((image[i] + 1) * 127.5, (image[n + i] + 1) * 127.5, (image[2 * n + i] + 1) * 127.5);

        var border = Enumerable.Range(0, n).Where(i => i % size == 0 || i % size == size - 1 || i < size || i >= n - size).Select(i => rgb[i]).ToList();
        var bg = Median(border);
        var distances = rgb.Select(p => Distance(p, bg)).ToArray();
        var far = Enumerable.Range(0, n).Where(i => distances[i] > 40).OrderByDescending(i => distances[i]).ToList();
        var fg = far.Count == 0 ? bg : Median(far.Take(Math.Max(1, far.Count / 2)).Select(i => rgb[i]).ToList());

        var coverage = new float[n];
        double floor = 2 * border.Select(p => Distance(p, bg)).Order().ElementAt(border.Count / 2);   // the noise on the background
        double length = Math.Max(Distance(fg, bg) - floor, 1e-9);
        double area = 0, cx = 0, cy = 0;
        for (int i = 0; i < n; i++)
        {
            double a = Math.Clamp((distances[i] - floor) / length, 0, 1);   // a patterned object's other colours count as covered too
            coverage[i] = (float)a;
            area += a;
            cx += a * (i % size + 0.5);
            cy += a * (i / size + 0.5);
        }
        double x = area > 0 ? cx / area / size : 0.5, y = area > 0 ? cy / area / size : 0.5;

        var best = (Shape: Shape.Circle, Radius: 0.0, Rotation: 0.0, Error: double.MaxValue);
        foreach (var shape in ToyWorld.Shapes)
        {
            double radius = Math.Sqrt(area / UnitArea[shape]) / size;
            foreach (double rotation in Rotations(shape))
            {
                double error = Difference(coverage, size, new Scene(0, 0, shape, x, y, radius, rotation), best.Error);
                if (error < best.Error) best = (shape, radius, rotation, error);
            }
        }
        return new Analysis(Nearest(bg), Nearest(fg), best.Shape, x, y, best.Radius, best.Rotation, coverage, best.Error, fg);
    }

    /// <summary>The palette colour nearest to an RGB value.</summary>
    public static int Nearest((double R, double G, double B) c) =>
        Enumerable.Range(0, ToyWorld.Palette.Length).MinBy(k => Distance(c, (ToyWorld.Palette[k].R, ToyWorld.Palette[k].G, ToyWorld.Palette[k].B)));

    static double Distance((double R, double G, double B) a, (double R, double G, double B) b) =>
        Math.Sqrt((a.R - b.R) * (a.R - b.R) + (a.G - b.G) * (a.G - b.G) + (a.B - b.B) * (a.B - b.B));

    static (double R, double G, double B) Median(List<(double R, double G, double B)> values)
    {
        static double M(IEnumerable<double> v) { var s = v.Order().ToArray(); return s[s.Length / 2]; }
        return (M(values.Select(v => v.R)), M(values.Select(v => v.G)), M(values.Select(v => v.B)));
    }

    /// <summary>Rotations to try: 3° steps over the shape's symmetry period (none for the round shapes).</summary>
    static IEnumerable<double> Rotations(Shape shape)
    {
        double period = shape switch
        {
            Shape.Circle or Shape.Ring => 0,
            Shape.Square or Shape.Cross => Math.PI / 2,
            Shape.Triangle => 2 * Math.PI / 3,
            _ => 2 * Math.PI / 5,
        };
        if (period == 0) return [0.0];
        int steps = (int)Math.Round(period / (3 * Math.PI / 180));
        return Enumerable.Range(0, steps).Select(k => k * period / steps);
    }

    /// <summary>Each shape's area at radius 1, by sampling a fine grid once.</summary>
    static readonly Dictionary<Shape, double> UnitArea = ToyWorld.Shapes.ToDictionary(s => s, s =>
    {
        const int Grid = 400;
        int inside = 0;
        for (int i = 0; i < Grid; i++)
        for (int j = 0; j < Grid; j++)
            if (ToyWorld.Inside(s, -1 + 2 * (i + 0.5) / Grid, -1 + 2 * (j + 0.5) / Grid)) inside++;
        return 4.0 * inside / (Grid * Grid);
    });

    /// <summary>Mean |coverage − template coverage| over the pixels (2×2 samples per pixel); stops early past
    /// <paramref name="limit"/>.</summary>
    static double Difference(float[] coverage, int size, Scene s, double limit)
    {
        double cos = Math.Cos(s.Rotation), sin = Math.Sin(s.Rotation), total = 0, stop = limit * size * size;
        for (int py = 0; py < size; py++)
        {
            for (int px = 0; px < size; px++)
            {
                int hits = 0;
                for (int k = 0; k < 4; k++)
                {
                    double x = ((px + 0.25 + 0.5 * (k & 1)) / size - s.X) / s.Radius, y = ((py + 0.25 + 0.5 * (k >> 1)) / size - s.Y) / s.Radius;
                    if (ToyWorld.Inside(s.Shape, cos * x + sin * y, -sin * x + cos * y)) hits++;
                }
                total += Math.Abs(coverage[py * size + px] - hits / 4.0);
            }
            if (total > stop) return double.MaxValue;
        }
        return total / (size * size);
    }
}
