// The demo's DreamBooth subject: one star the world never renders, two-toned, with a centre dot and fine stripes.

namespace DreamBooth.Trainer.World;

/// <summary>
/// A star split into a yellow left half and a purple right half, with a white centre dot and thin dark stripes across
/// it. The stripes are 0.25 radius apart and 0.06 wide: about 1 pixel wide at 64×64, where the super-resolution stage
/// works, and a mere darkening at the base model's 32×32, so only a fine-tuned SR stage can keep them. The class noun is
/// "star"; the identifier is "sks", never seen in pretraining.
/// </summary>
public static class ToySubject
{
    public const string Identifier = "sks", ClassNoun = "star";
    public const int Background = 1;   // green: the instance images all share it
    static readonly (byte, byte, byte) Left = (240, 220, 40), Right = (140, 60, 190), Dot = (245, 245, 245), Stripe = (25, 25, 25);

    public static (byte R, byte G, byte B) Paint(double x, double y)
    {
        if (x * x + y * y <= 0.18 * 0.18) return Dot;
        if ((y + 10) % 0.25 < 0.06) return Stripe;
        return x < 0 ? Left : Right;
    }

    /// <summary>The subject at instance pose k (four poses: position, scale and rotation vary; the background does not).</summary>
    public static Scene Pose(int k) => k switch
    {
        0 => new Scene(Background, 0, Shape.Star, 0.50, 0.50, 0.34, 0.0),
        1 => new Scene(Background, 0, Shape.Star, 0.42, 0.56, 0.30, 0.2),
        2 => new Scene(Background, 0, Shape.Star, 0.58, 0.44, 0.36, -0.15),
        _ => new Scene(Background, 0, Shape.Star, 0.47, 0.45, 0.28, 0.25),
    };

    public static float[] Render(Scene pose, int size) => ToyWorld.Render(pose, size, Paint);

    /// <summary>Writes the four instance images at <paramref name="size"/> pixels as PNGs into <paramref name="dir"/>.</summary>
    public static void WriteInstances(string dir, int size, int count = 4)
    {
        Directory.CreateDirectory(dir);
        for (int k = 0; k < count; k++)
        {
            var pixels = Array.ConvertAll(Render(Pose(k), size), v => v * 0.5f + 0.5f);
            Images.SavePng(Path.Combine(dir, $"{k:D2}.png"), pixels, 0, size, size);
        }
    }
}
