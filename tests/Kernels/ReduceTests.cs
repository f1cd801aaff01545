// Tests of ReduceSum over different axis sets and SumSquares (large n) on every backend, and finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class ReduceTests(string backend) : BackendTest(backend)
{
    // The cpu tier adds 4 f32 terms per lane (or one f32 column at a time) before widening to double, so each partial
    // carries ~1e-7 relative error; over up to 300000 terms of [-1, 1] (sums of magnitude ~300) that stays below 1e-4.
    // The CUDA tier keeps one f32 running sum per output (ReduceKernels.Sum): its error grows like √n·2⁻²⁴·|partial sum|,
    // about 5e-5 for the 2000-term sums of its longest cases, so the same bound holds there (its cases stay ≤ 2000 terms).
    const double Atol = 1e-4, Rtol = 1e-6;
    // Squares are positive, so no cancellation: the f32 squares (one rounding each) and the f32 result bound the error.
    const double SquaresRtol = 1e-6;

    public static readonly object[] Axes =
    [
        new object[] { new[] { 2, 3, 4 }, new[] { 1, 1, 1 } },              // everything
        new object[] { new[] { 5, 37 }, new[] { 5, 1 } },                   // trailing contiguous axis
        new object[] { new[] { 37, 5 }, new[] { 1, 5 } },                   // leading axis
        new object[] { new[] { 2, 3, 5, 7 }, new[] { 1, 3, 1, 1 } },        // (N, C, H, W) leaving C: conv bias gradient
        new object[] { new[] { 4, 6, 5 }, new[] { 4, 1, 5 } },              // middle axis
        new object[] { new[] { 3, 4, 5, 6 }, new[] { 3, 1, 5, 1 } },        // alternating
        new object[] { new[] { 3, 4, 5, 6 }, new[] { 1, 4, 1, 6 } },        // alternating, starting summed
        new object[] { new[] { 3, 4 }, new[] { 3, 4 } },                    // nothing summed (a scaled copy)
        new object[] { new[] { 1, 5, 1 }, new[] { 1, 1, 1 } },              // size-1 axes
        new object[] { new[] { 1 }, new[] { 1 } },                          // one element
        new object[] { new[] { 1000, 320 }, new[] { 1, 320 } },             // linear bias gradient (rows, C)
        new object[] { new[] { 2, 3, 4, 5, 6 }, new[] { 2, 1, 4, 1, 1 } },  // rank 5, summed runs on both sides of a kept one
        new object[] { new[] { 2, 3, 2, 3, 2, 3 }, new[] { 2, 1, 2, 1, 1, 3 } },  // rank 6, the most CUDA's kernel unrolls
        new object[] { new[] { 3, 2000 }, new[] { 3, 1 } },                 // rows: on CUDA one thread walks each row
        new object[] { new[] { 2000, 3 }, new[] { 1, 3 } },                 // columns: on CUDA a strided walk per thread
        new TestCaseData(new[] { 4, 32, 4900 }, new[] { 1, 32, 1 }).SetCategory(HostScale),   // conv bias at scale, parallel
        new TestCaseData(new[] { 300000 }, new[] { 1 }).SetCategory(HostScale),               // one long sum, split into pieces
        new TestCaseData(new[] { 70000, 3 }, new[] { 1, 3 }).SetCategory(HostScale),          // long narrow columns
        new TestCaseData(new[] { 3, 70000 }, new[] { 3, 1 }).SetCategory(HostScale),          // long rows
    ];

    [TestCaseSource(nameof(Axes))]
    public void SumMatchesReference(int[] xShape, int[] yShape)
    {
        var x = TestData.Uniform(1, xShape.Aggregate(1L, (p, d) => p * d));
        var expected = new double[yShape.Aggregate(1L, (p, d) => p * d)];
        double scale = (float)(expected.Length / (double)x.Length);   // the mean's 1/count
        ReduceReference.Sum(expected, x, xShape, yShape, scale);
        var y = Zeros(expected.Length);
        Backend.ReduceSum(y, Buf(x), xShape, yShape, (float)scale);
        Close.Assert(Read(y), expected, Atol * scale, Rtol, $"{Check.Shape(xShape)} -> {Check.Shape(yShape)}");
        ReduceReference.Sum(expected, x, xShape, yShape, 1);
        Backend.ReduceSum(y, Buf(x), xShape, yShape, 1);
        Close.Assert(Read(y), expected, Atol, Rtol, $"{Check.Shape(xShape)} -> {Check.Shape(yShape)} unscaled");
    }

    [TestCase(4, 32, 4900, Category = HostScale)]   // parallel on the cpu tier
    [TestCase(3, 32, 100)]                          // CUDA: ten level-1 groups of the two-level SumSquares
    public void SumIsDeterministic(int n, int c, int hw)
    {
        int[] xShape = [n, c, hw], yShape = [1, c, 1];
        var x = Buf(TestData.Uniform(2, n * c * hw));
        var first = Zeros(c);
        var second = Zeros(c);
        Backend.ReduceSum(first, x, xShape, yShape, 1);
        Backend.ReduceSum(second, x, xShape, yShape, 1);
        Assert.That(Read(second), Is.EqualTo(Read(first)));
        var total1 = Zeros(1);
        var total2 = Zeros(1);
        Backend.SumSquares(total1, x, x.Length);
        Backend.SumSquares(total2, x, x.Length);
        Assert.That(Read(total2), Is.EqualTo(Read(total1)));
    }

    [TestCase(1)]
    [TestCase(15)]
    [TestCase(17)]
    [TestCase(1000)]
    [TestCase(3001)]                                // CUDA: three level-1 groups
    [TestCase(100003, Category = HostScale)]
    [TestCase(3000001, Category = HostScale)]
    public void SumSquaresMatchesReference(int n)
    {
        var x = TestData.Uniform(n, n, 3);
        var result = Zeros(1);
        Backend.SumSquares(result, Buf(x), n);
        Close.Assert(Read(result), [ReduceReference.SumSquares(x)], 0, SquaresRtol, $"n={n}");
    }

    // Host tiers only: 20M elements take a minute on the emulator, and the CUDA tier's two-level sum never keeps one
    // running sum over more than ~80 terms per thread (MseLossKernels: at most 1024 groups of 256 threads).
    [Test, Category(HostScale)]
    public void SumSquaresDoesNotStallAboveTwoToThe24()
    {
        // A plain f32 running sum of ones stops growing at 2²⁴ = 16777216; 20000001 ones must give 2e7 (f32-rounded).
        const int n = 20_000_001;
        var ones = new float[n];
        Array.Fill(ones, 1f);
        var x = Zeros(n);
        Backend.Upload<float>(x, ones);
        var result = Zeros(1);
        Backend.SumSquares(result, x, n);
        Assert.That(Read(result)[0], Is.EqualTo((float)n));
    }

    [Test]
    public void BadArguments()
    {
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(3), Zeros(12), [3, 4], [3], 1));             // rank differs
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(6), Zeros(12), [3, 4], [3, 2], 1));          // 2 is neither 4 nor 1
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(4), Zeros(12), [3, 4], [3, 1], 1));          // y length
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(3), Zeros(13), [3, 4], [3, 1], 1));          // x length
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(3), Zeros(12, DType.F16), [3, 4], [3, 1], 1));
        Expect("reduce sum", () => Backend.ReduceSum(Zeros(1), Zeros(1), [0], [1], 1));
        Expect("sum squares", () => Backend.SumSquares(Zeros(2), Zeros(5), 5));
        Expect("sum squares", () => Backend.SumSquares(Zeros(1), Zeros(5), 6));
        Expect("sum squares", () => Backend.SumSquares(Zeros(1), Zeros(5, DType.I32), 5));
        Expect("sum squares", () => Backend.SumSquares(Zeros(1), Zeros(5), 0));
    }

    static void Expect(string op, TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
    }
}

[TestFixture]
public class ReduceGradChecks
{
    [Test]
    public void SumBackward()
    {
        int[] xShape = [3, 4, 5], yShape = [1, 4, 1];
        GradCheck.Check([TestData.Uniform(1, 60)],
            inputs => { var y = new double[4]; ReduceReference.Sum(y, inputs[0], xShape, yShape, 0.5); return y; },
            (inputs, dy) => { var dx = new double[60]; ReduceReference.SumBackward(dx, dy, xShape, yShape, 0.5); return [dx]; },
            "reduce sum");
    }

    [Test]
    public void SumSquares()
    {
        // d/dx Σx² = 2x; the output is one element, so dL/dx = 2x·dy.
        GradCheck.Check([TestData.Uniform(2, 30)],
            inputs => [ReduceReference.SumSquares(inputs[0])],
            (inputs, dy) => [Array.ConvertAll(inputs[0], v => 2 * v * dy[0])],
            "sum squares");
    }
}
