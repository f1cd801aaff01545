// Seeded random inputs for tests: the same numbers on every run and every backend.
namespace DreamBooth.Tests.Support;

public static class TestData
{
    /// <summary>Uniform values in [-scale, scale), rounded to float so every tier sees identical inputs.</summary>
    public static double[] Uniform(int seed, long length, double scale = 1.0)
    {
        var rng = new Random(seed);
        var values = new double[length];
        for (long i = 0; i < length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return values;
    }

    public static float[] ToFloat(double[] values) => Array.ConvertAll(values, v => (float)v);
}
