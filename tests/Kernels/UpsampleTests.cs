// Tests of UpsampleNearest2x and its backward on every backend, and a finite-difference check of the backward.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class UpsampleTests(string backend) : BackendTest(backend)
{
    // The forward copies values: exact. The backward adds four f32 values of [-1, 1] in pairs: three roundings of
    // partial sums up to 4 in magnitude (≤ 3·4·2⁻²⁴ ≈ 7e-7 absolute, whatever the cancellation in the result).
    const double BackwardRtol = 0, BackwardAtol = 7.2e-7;

    public static readonly object[] Shapes =
    [
        new object[] { 1, 1, 1 },
        new object[] { 3, 5, 7 },
        new object[] { 3, 5, 1 },       // one column: the CUDA kernels' index arithmetic at w = 1
        new object[] { 2, 4, 16 },
        new object[] { 2, 3, 33 },
        new object[] { 16, 40, 40 },    // parallel
    ];

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesReference(int planes, int h, int w)
    {
        var x = TestData.Uniform(planes + h + w, (long)planes * h * w);
        var expected = new double[4 * x.Length];
        UpsampleReference.Forward(expected, x, planes, h, w);
        var y = Zeros(expected.Length);
        Backend.UpsampleNearest2x(y, Buf(x), planes, h, w);
        Close.Assert(Read(y), expected, 0, 0, $"upsample ({planes}, {h}, {w})");
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesReference(int planes, int h, int w)
    {
        var dy = TestData.Uniform(planes * h + w, 4L * planes * h * w);
        var expected = new double[dy.Length / 4];
        UpsampleReference.Backward(expected, dy, planes, h, w);
        var dx = Zeros(expected.Length);
        Backend.UpsampleNearest2xBackward(dx, Buf(dy), planes, h, w);
        Close.Assert(Read(dx), expected, BackwardAtol, BackwardRtol, $"upsample backward ({planes}, {h}, {w})");
    }

    [Test]
    public void BadArguments()
    {
        Expect("upsample nearest 2x", () => Backend.UpsampleNearest2x(Zeros(23), Zeros(6), 1, 2, 3));   // y must be 4·6
        Expect("upsample nearest 2x", () => Backend.UpsampleNearest2x(Zeros(24), Zeros(5), 1, 2, 3));
        Expect("upsample nearest 2x", () => Backend.UpsampleNearest2x(Zeros(0), Zeros(0), 1, 0, 3));
        Expect("upsample nearest 2x", () => Backend.UpsampleNearest2x(Zeros(24), Zeros(6, DType.I32), 1, 2, 3));
        Expect("upsample nearest 2x backward", () => Backend.UpsampleNearest2xBackward(Zeros(6), Zeros(23), 1, 2, 3));
    }

    static void Expect(string op, TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
    }
}

[TestFixture]
public class UpsampleGradChecks
{
    [Test]
    public void Backward()
    {
        const int planes = 2, h = 3, w = 4;
        GradCheck.Check([TestData.Uniform(1, planes * h * w)],
            inputs => { var y = new double[4 * planes * h * w]; UpsampleReference.Forward(y, inputs[0], planes, h, w); return y; },
            (inputs, dy) => { var dx = new double[planes * h * w]; UpsampleReference.Backward(dx, dy, planes, h, w); return [dx]; },
            "upsample");
    }
}
