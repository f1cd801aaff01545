// Tests of Geglu/GegluBackward (x = [h | gate], y = h·gelu(gate)) on every backend, and finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures]
public class GegluTests(string backend) : BackendTest(backend)
{
    // The cpu GELU is within ~3e-7 relative (exp and erf approximations); h·gelu and dy·h·gelu' add two f32
    // roundings, and gelu' crosses zero near gate = −0.75, hence an absolute part on these O(1)..O(16) values.
    const double Atol = 1e-6, Rtol = 2e-6;

    public static readonly object[] Shapes =
    [
        new object[] { 1, 1 },
        new object[] { 3, 17 },
        new object[] { 5, 32 },
        new object[] { 2, 1280 },      // SD 1.5 feed-forward width
        new object[] { 70, 1000 },     // parallel over rows
    ];

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesReference(int rows, int dim)
    {
        var x = TestData.Uniform(rows + dim, 2L * rows * dim, 4);
        var expected = new double[rows * dim];
        GegluReference.Forward(expected, x, rows, dim);
        var y = Zeros(expected.Length);
        Backend.Geglu(y, Buf(x), rows, dim);
        Close.Assert(Read(y), expected, Atol, Rtol, $"geglu ({rows}, {dim})");
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesReference(int rows, int dim)
    {
        var x = TestData.Uniform(rows + dim, 2L * rows * dim, 4);
        var dy = TestData.Uniform(3, (long)rows * dim);
        var expected = new double[x.Length];
        GegluReference.Backward(expected, dy, x, rows, dim);
        var dx = Zeros(x.Length);
        Backend.GegluBackward(dx, Buf(dy), Buf(x), rows, dim);
        Close.Assert(Read(dx), expected, Atol, Rtol, $"geglu backward ({rows}, {dim})");
    }

    [Test]
    public void BadArguments()
    {
        Expect("geglu", () => Backend.Geglu(Zeros(6), Zeros(10), 2, 3));           // x must be (2, 6)
        Expect("geglu", () => Backend.Geglu(Zeros(5), Zeros(12), 2, 3));           // y must be (2, 3)
        Expect("geglu", () => Backend.Geglu(Zeros(6), Zeros(12, DType.BF16), 2, 3));
        Expect("geglu", () => Backend.Geglu(Zeros(6), Zeros(12), 0, 3));
        Expect("geglu backward", () => Backend.GegluBackward(Zeros(6), Zeros(6), Zeros(12), 2, 3));   // dx is (2, 6)
        Expect("geglu backward", () => Backend.GegluBackward(Zeros(12), Zeros(7), Zeros(12), 2, 3));
    }

    static void Expect(string op, TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
    }
}

[TestFixture]
public class GegluGradChecks
{
    [Test]
    public void Backward()
    {
        const int rows = 3, dim = 5;
        GradCheck.Check([TestData.Uniform(4, 2 * rows * dim, 3)],
            inputs => { var y = new double[rows * dim]; GegluReference.Forward(y, inputs[0], rows, dim); return y; },
            (inputs, dy) => { var dx = new double[2 * rows * dim]; GegluReference.Backward(dx, dy, inputs[0], rows, dim); return [dx]; },
            "geglu");
    }
}
