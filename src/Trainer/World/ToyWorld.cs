// The toy world of the embedded model: one anti-aliased object on a plain background, its attributes and its captions.
using DreamBooth.Kernels;

namespace DreamBooth.Trainer.World;

public enum Shape { Circle, Square, Triangle, Star, Cross, Ring }

/// <summary>A named colour of the palette, its RGB in [0, 255].</summary>
public sealed record NamedColour(string Name, byte R, byte G, byte B);

/// <summary>One scene: background and object colour (palette indices), the shape, its centre and radius in units of the
/// image side (so a scene renders at any size), and its rotation in radians.</summary>
public sealed record Scene(int Background, int Colour, Shape Shape, double X, double Y, double Radius, double Rotation);

/// <summary>
/// The procedural world: scenes drawn uniformly from the attributes, rendered with 4×4 supersampling (anti-aliased edges),
/// and captioned in a small grammar whose shorter forms leave attributes out: "a red star on a blue background",
/// "a red star", "a star on a blue background", "a star", or "" (the unconditional caption classifier-free guidance needs).
/// </summary>
public static class ToyWorld
{
    public static readonly NamedColour[] Palette =
    [
        new("red", 220, 40, 40), new("green", 40, 170, 60), new("blue", 40, 80, 220), new("yellow", 240, 220, 40),
        new("purple", 140, 60, 190), new("orange", 250, 140, 30), new("white", 245, 245, 245), new("black", 25, 25, 25),
    ];

    public static readonly Shape[] Shapes = Enum.GetValues<Shape>();

    public static string Name(Shape shape) => shape.ToString().ToLowerInvariant();

    /// <summary>The rare identifiers DreamBooth binds a subject to: in the vocabulary, never in a pretraining caption.</summary>
    public static readonly string[] Identifiers = ["sks", "zwx"];

    public const double MinRadius = 0.22, MaxRadius = 0.36;

    /// <summary>Objects stand nearly upright: rotation is uniform in ±15°.</summary>
    public const double MaxRotation = Math.PI / 12;

    /// <summary>Scene <paramref name="index"/> of the stream <paramref name="seed"/>: every attribute uniform, the object
    /// inside the image, its colour different from the background's.</summary>
    public static Scene Sample(ulong seed, long index)
    {
        var (w0, w1, w2, w3) = Philox.StreamBlock(seed, (ulong)index << 1, 0);
        var (w4, w5, _, _) = Philox.StreamBlock(seed, (ulong)index << 1, 1);
        double U(uint w) => Philox.ToUniform(w);
        int background = (int)(U(w0) * Palette.Length);
        int colour = (background + 1 + (int)(U(w1) * (Palette.Length - 1))) % Palette.Length;
        var shape = Shapes[(int)(U(w2) * Shapes.Length)];
        double radius = MinRadius + U(w3) * (MaxRadius - MinRadius);
        double margin = radius + 0.04;
        return new Scene(background, colour, shape, margin + U(w4) * (1 - 2 * margin), margin + U(w5) * (1 - 2 * margin), radius,
            (U(w4 ^ w5) - 0.5) * 2 * MaxRotation);
    }

    /// <summary>The caption forms, by kind: 0 full, 1 colour and shape, 2 shape and background, 3 shape, 4 empty.</summary>
    public static string Caption(Scene s, int form) => form switch
    {
        0 => $"a {Palette[s.Colour].Name} {Name(s.Shape)} on a {Palette[s.Background].Name} background",
        1 => $"a {Palette[s.Colour].Name} {Name(s.Shape)}",
        2 => $"a {Name(s.Shape)} on a {Palette[s.Background].Name} background",
        3 => $"a {Name(s.Shape)}",
        _ => "",
    };

    /// <summary>A training caption: the full form 40 % of the time, each shorter one 15 %, empty 15 %.</summary>
    public static string TrainingCaption(Scene s, double u) => Caption(s, u switch { < 0.40 => 0, < 0.55 => 1, < 0.70 => 2, < 0.85 => 3, _ => 4 });

    /// <summary>Every word a caption can hold (and the identifiers): what the vocabulary must spell as single tokens.</summary>
    public static IEnumerable<string> Words() =>
        new[] { "a", "on", "background" }.Concat(Palette.Select(c => c.Name)).Concat(Shapes.Select(Name)).Concat(Identifiers);

    /// <summary>Whether point (x, y), in units of the object's radius around its centre and unrotated, lies in the shape.</summary>
    public static bool Inside(Shape shape, double x, double y)
    {
        switch (shape)
        {
            case Shape.Circle: return x * x + y * y <= 1;
            case Shape.Square: return Math.Max(Math.Abs(x), Math.Abs(y)) <= 0.78;
            case Shape.Ring: { double r2 = x * x + y * y; return r2 <= 1 && r2 >= 0.36; }
            case Shape.Cross: return (Math.Abs(x) <= 0.3 && Math.Abs(y) <= 1) || (Math.Abs(y) <= 0.3 && Math.Abs(x) <= 1);
            case Shape.Triangle: return InPolygon(Triangle, x, y);
            default: return InPolygon(Star, x, y);
        }
    }

    static readonly (double X, double Y)[] Triangle = Polygon(3, 1, 1);
    static readonly (double X, double Y)[] Star = Polygon(5, 1, 0.45);

    /// <summary>A regular n-gon (inner = outer) or an n-pointed star, first vertex pointing up.</summary>
    static (double, double)[] Polygon(int n, double outer, double inner)
    {
        int vertices = inner == outer ? n : 2 * n;
        return Enumerable.Range(0, vertices).Select(k =>
        {
            double r = vertices == n || k % 2 == 0 ? outer : inner, a = -Math.PI / 2 + 2 * Math.PI * k / vertices;
            return (r * Math.Cos(a), r * Math.Sin(a));
        }).ToArray();
    }

    static bool InPolygon((double X, double Y)[] p, double x, double y)
    {
        bool inside = false;
        for (int i = 0, j = p.Length - 1; i < p.Length; j = i++)
            if ((p[i].Y > y) != (p[j].Y > y) && x < (p[j].X - p[i].X) * (y - p[i].Y) / (p[j].Y - p[i].Y) + p[i].X) inside = !inside;
        return inside;
    }

    /// <summary>
    /// The scene as (3, size, size) in [−1, 1]: each pixel the mean of 4×4 samples of background or object colour.
    /// <paramref name="paint"/> may recolour the object per point (x, y in the object's unrotated frame, radius units):
    /// the DreamBooth subject's pattern.
    /// </summary>
    public static float[] Render(Scene s, int size, Func<double, double, (byte R, byte G, byte B)>? paint = null)
    {
        const int Sub = 4;
        var pixels = new float[3 * size * size];
        var bg = Palette[s.Background];
        var fg = Palette[s.Colour];
        double cos = Math.Cos(s.Rotation), sin = Math.Sin(s.Rotation);
        for (int py = 0; py < size; py++)
        for (int px = 0; px < size; px++)
        {
            double r = 0, g = 0, b = 0;
            for (int sy = 0; sy < Sub; sy++)
            for (int sx = 0; sx < Sub; sx++)
            {
                double x = ((px + (sx + 0.5) / Sub) / size - s.X) / s.Radius, y = ((py + (sy + 0.5) / Sub) / size - s.Y) / s.Radius;
                double ux = cos * x + sin * y, uy = -sin * x + cos * y;   // into the object's frame
                if (Inside(s.Shape, ux, uy))
                {
                    var (cr, cg, cb) = paint?.Invoke(ux, uy) ?? (fg.R, fg.G, fg.B);
                    r += cr; g += cg; b += cb;
                }
                else { r += bg.R; g += bg.G; b += bg.B; }
            }
            int at = py * size + px;
            const double Norm = 1.0 / (Sub * Sub * 127.5);
            pixels[at] = (float)(r * Norm - 1);
            pixels[size * size + at] = (float)(g * Norm - 1);
            pixels[2 * size * size + at] = (float)(b * Norm - 1);
        }
        return pixels;
    }
}
