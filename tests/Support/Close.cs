// Element-wise comparison |actual - expected| <= atol + rtol·|expected|, reporting the worst element.
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

public static class Close
{
    public static void Assert(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what)
    {
        NUnit.Framework.Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double bound = atol + rtol * Math.Abs(expected[i]);
            double err = Math.Abs(actual[i] - expected[i]);
            if (double.IsNaN(actual[i]) != double.IsNaN(expected[i]) || err > bound)
            {
                double excess = double.IsNaN(err) ? double.PositiveInfinity : err - bound;
                if (worst < 0 || excess > worstExcess) { worst = i; worstExcess = excess; }
            }
        }
        if (worst >= 0)
            NUnit.Framework.Assert.Fail($"{what}: element {worst} is {actual[worst]:R}, expected {expected[worst]:R} " +
                                        $"(atol {atol}, rtol {rtol}, {actual.Length} elements)");
    }

    public static void Assert(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++) e[i] = expected[i];
        Assert(actual, e, atol, rtol, what);
    }
}
