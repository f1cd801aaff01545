// Tests of Unary/UnaryBackward (SiLU, GELU, GELU-tanh, QuickGELU) on every backend, and finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures]
public class UnaryTests(string backend) : BackendTest(backend)
{
    // The cpu tier's exp is within 1.6e-7 relative and its erf within ~2e-7; σ, the products and the f32 output add a
    // few roundings, so values match to 1e-6 relative. Derivatives cross zero (SiLU' near x = −1.28), where a relative
    // bound is meaningless: 1e-6 absolute covers the same errors on O(1) values.
    const double Atol = 1e-6, Rtol = 1e-6;
    // The erf-accuracy test is purely relative over the GELU's tail (values down to 1e-32): 1e-6 is the claimed bound.
    const double TailRtol = 1e-6;

    /// <summary>Uniform [-6, 6] with the extremes ±30, ±80 and 0, and the CUDA kernel's erf-fit switch points (|x/√2| = ½,
    /// on both sides), mixed in (when there is room).</summary>
    static double[] Inputs(int n, int seed)
    {
        var x = TestData.Uniform(seed, n, 6);
        double[] extremes = [30, -30, 80, -80, 0, 6, -6, (float)0.70710678, (float)-0.70710678, (float)0.7071068, (float)-0.7071068];
        for (int i = 0; i < extremes.Length && 3 * i < n; i++) x[3 * i] = extremes[i];
        return x;
    }

    [Test]
    public void ForwardMatchesReference([Values] UnaryOp op, [Values(1, 15, 17, 1000, 100003)] int n)
    {
        var x = Inputs(n, n);
        var expected = new double[n];
        UnaryReference.Forward(op, expected, x);
        var y = Zeros(n);
        Backend.Unary(op, y, Buf(x), n);
        Close.Assert(Read(y), expected, Atol, Rtol, $"{op} n={n}");
    }

    [Test]
    public void BackwardMatchesReference([Values] UnaryOp op, [Values(1, 15, 17, 1000, 100003)] int n)
    {
        var x = Inputs(n, n);
        var dy = TestData.Uniform(n + 1, n);
        var expected = new double[n];
        UnaryReference.Backward(op, expected, dy, x);
        var dx = Zeros(n);
        Backend.UnaryBackward(op, dx, Buf(dy), Buf(x), n);
        Close.Assert(Read(dx), expected, Atol, Rtol, $"{op} backward n={n}");
    }

    [Test]
    public void InPlace([Values] UnaryOp op)
    {
        const int n = 1000;
        var x = Inputs(n, 3);
        var dy = TestData.Uniform(4, n);
        var expectedY = new double[n];
        var expectedDx = new double[n];
        UnaryReference.Forward(op, expectedY, x);
        UnaryReference.Backward(op, expectedDx, dy, x);
        var y = Buf(x);
        Backend.Unary(op, y, y, n);
        Close.Assert(Read(y), expectedY, Atol, Rtol, $"{op} y = x");
        var g = Buf(dy);
        Backend.UnaryBackward(op, g, g, Buf(x), n);
        Close.Assert(Read(g), expectedDx, Atol, Rtol, $"{op} dx = dy");
    }

    [Test]
    public void GeluKeepsRelativeAccuracyInTheTail()
    {
        // x from −12 (GELU ≈ −2e-32) to 8: the cpu tier computes Φ from erfc in the left tail instead of 1 + erf.
        const int n = 20001;
        var x = new double[n];
        for (int i = 0; i < n; i++) x[i] = (float)(-12 + 20.0 * i / (n - 1));
        var expected = new double[n];
        UnaryReference.Forward(UnaryOp.Gelu, expected, x);
        var y = Zeros(n);
        Backend.Unary(UnaryOp.Gelu, y, Buf(x), n);
        Close.Assert(Read(y), expected, 0, TailRtol, "gelu over [-12, 8]");
    }

    [Test]
    public void ReferenceErfMatchesKnownValues()
    {
        // Tabulated values (Abramowitz & Stegun 7.1, to 17 digits); the series and continued fraction reach 2 ulps.
        (double X, double Erf)[] table = [(0.5, 0.52049987781304654), (1, 0.84270079294971487), (-2, -0.99532226501895273),
            (3.5, 0.99999925690162766)];
        foreach (var (x, erf) in table)
            Assert.That(UnaryReference.Erf(x), Is.EqualTo(erf).Within(4e-16 * Math.Abs(erf)), $"erf({x})");
        Assert.That(UnaryReference.Erfc(5), Is.EqualTo(1.5374597944280349e-12).Within(4e-16 * 1.54e-12), "erfc(5)");
        Assert.That(UnaryReference.Erfc(-1), Is.EqualTo(1.8427007929497149).Within(4e-16 * 1.85), "erfc(-1)");
    }

    [Test]
    public void NoNaNAtExtremes([Values] UnaryOp op)
    {
        double[] x = [-1e30, -200, -89, -88, 88, 89, 200, 1e30];
        var y = Zeros(x.Length);
        var dx = Zeros(x.Length);
        Backend.Unary(op, y, Buf(x), x.Length);
        Backend.UnaryBackward(op, dx, Buf(Enumerable.Repeat(1.0, x.Length).ToArray()), Buf(x), x.Length);
        foreach (float v in Read(y).Concat(Read(dx))) Assert.That(float.IsFinite(v), $"{op}: {v}");
    }

    [Test]
    public void BadArguments()
    {
        var ok = Zeros(10);
        Expect(() => Backend.Unary(UnaryOp.Silu, Zeros(9), ok, 10));
        Expect(() => Backend.Unary(UnaryOp.Silu, ok, Zeros(10, DType.I32), 10));
        Expect(() => Backend.Unary(UnaryOp.Silu, ok, ok, 0));
        Expect(() => Backend.Unary((UnaryOp)99, ok, ok, 10));
        Expect(() => Backend.UnaryBackward(UnaryOp.Gelu, ok, Zeros(11), ok, 10));
        Expect(() => Backend.UnaryBackward(UnaryOp.Gelu, ok, ok, Zeros(10, DType.F16), 10));
    }

    static void Expect(TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.Contain("unary"));
    }
}

[TestFixture]
public class UnaryGradChecks
{
    [Test]
    public void Backward([Values] UnaryOp op)
    {
        var x = TestData.Uniform(11, 40, 5);
        GradCheck.Check([x],
            inputs => { var y = new double[inputs[0].Length]; UnaryReference.Forward(op, y, inputs[0]); return y; },
            (inputs, dy) => { var dx = new double[dy.Length]; UnaryReference.Backward(op, dx, dy, inputs[0]); return [dx]; },
            op.ToString());
    }
}
