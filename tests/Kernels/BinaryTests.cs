// Tests of Binary/BinaryBackward with NumPy broadcasting, Scale and Axpy on every backend, and finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class BinaryTests(string backend) : BackendTest(backend)
{
    // One f32 operation per output element: within an ulp (6e-8 relative) of the double result.
    const double Rtol = 1e-6, Atol = 1e-7;
    // Gradients of broadcast operands are sums of up to ~70000 f32 terms (each rounded once, summed in double), and the
    // div gradient −dy·a/b² is three rounded f32 steps: 1e-5 covers both.
    const double GradRtol = 1e-5, GradAtol = 1e-5;
    // The CUDA tier folds a broadcast gradient with ReduceKernels.Sum, one f32 running sum per element of the operand,
    // whose error grows like √n·2⁻²⁴·|partial sum|: 3e-5 was measured on the 2200-term sums of the conv-bias case.
    const double CudaGradAtol = 1e-4;

    double GradAtolOfTier => Tier(GradAtol, CudaGradAtol);

    public static readonly object[] Shapes =
    [
        new object[] { new[] { 1000 }, new[] { 1000 } },                // same shape
        new TestCaseData(new[] { 100003 }, new[] { 100003 }).SetCategory(HostScale),   // same shape, parallel
        new TestCaseData(new[] { 100003 }, new[] { 1 }).SetCategory(HostScale),        // scalar b, parallel
        new object[] { new[] { 3000 }, new[] { 1 } },                    // scalar b; CUDA: a 3000-term sum for db
        new object[] { new[] { 1 }, new[] { 33 } },                      // scalar a
        new object[] { new[] { 1 }, new[] { 1 } },                       // one element
        new object[] { new[] { 4, 37 }, new[] { 37 } },                  // row
        new object[] { new[] { 4, 37 }, new[] { 4, 1 } },                // column
        new object[] { new[] { 3, 5, 7 }, new[] { 1, 5, 1 } },           // middle axis
        new object[] { new[] { 2, 3, 4, 5 }, new[] { 4, 1 } },           // rank mismatch
        new object[] { new[] { 3, 1 }, new[] { 1, 4 } },                 // both sides broadcast
        new object[] { new[] { 1, 5, 1 }, new[] { 3, 1, 2 } },           // both sides, three axes
        new object[] { new[] { 2, 32, 1100 }, new[] { 1, 32, 1 } },      // conv bias over (N, C, HW), parallel
        new TestCaseData(new[] { 2, 70000 }, new[] { 2, 1 }).SetCategory(HostScale),   // long rows split into pieces
        new object[] { new[] { 17 }, new[] { 5, 3, 17 } },               // a broadcast along leading dims
        new object[] { new[] { 2, 1, 3, 1, 2, 3 }, new[] { 1, 4, 1, 5, 1, 3 } },   // six axes (the most CUDA's kernel unrolls)
    ];

    static long Count(int[] shape) => shape.Aggregate(1L, (p, d) => p * d);

    static (double[] A, double[] B) Operands(int[] aShape, int[] bShape, BinaryOp op)
    {
        var a = TestData.Uniform(1, Count(aShape), 2);
        var b = TestData.Uniform(2, Count(bShape), 2);
        if (op == BinaryOp.Div) b = Array.ConvertAll(b, v => (double)(float)(Math.CopySign(0.5, v) + v));   // |b| ≥ 0.5
        return (a, b);
    }

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesReference(int[] aShape, int[] bShape)
    {
        foreach (BinaryOp op in Enum.GetValues<BinaryOp>())
        {
            var (a, b) = Operands(aShape, bShape, op);
            int[] shape = Broadcasting.Shape("test", aShape, bShape);
            var expected = new double[Count(shape)];
            BinaryReference.Forward(op, expected, a, b, aShape, bShape);
            var y = Zeros(expected.Length);
            Backend.Binary(op, y, Buf(a), Buf(b), aShape, bShape);
            Close.Assert(Read(y), expected, Atol, Rtol, $"{op} {Check.Shape(aShape)} {Check.Shape(bShape)}");
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesReference(int[] aShape, int[] bShape)
    {
        foreach (BinaryOp op in Enum.GetValues<BinaryOp>())
        {
            var (a, b) = Operands(aShape, bShape, op);
            int[] shape = Broadcasting.Shape("test", aShape, bShape);
            var dy = TestData.Uniform(3, Count(shape));
            var expectedA = new double[a.Length];
            var expectedB = new double[b.Length];
            BinaryReference.Backward(op, expectedA, expectedB, dy, a, b, aShape, bShape);
            var da = Zeros(a.Length);
            var db = Zeros(b.Length);
            Backend.BinaryBackward(op, da, db, Buf(dy), Buf(a), Buf(b), aShape, bShape);
            string what = $"{op} {Check.Shape(aShape)} {Check.Shape(bShape)}";
            Close.Assert(Read(da), expectedA, GradAtolOfTier, GradRtol, what + " da");
            Close.Assert(Read(db), expectedB, GradAtolOfTier, GradRtol, what + " db");
        }
    }

    [Test]
    public void BackwardWithOneGradient([Values] BinaryOp op)
    {
        int[] aShape = [3, 1, 4], bShape = [2, 1];
        var (a, b) = Operands(aShape, bShape, op);
        var dy = TestData.Uniform(5, 24);
        var expectedA = new double[a.Length];
        var expectedB = new double[b.Length];
        BinaryReference.Backward(op, expectedA, expectedB, dy, a, b, aShape, bShape);
        var da = Zeros(a.Length);
        Backend.BinaryBackward(op, da, null, Buf(dy), Buf(a), Buf(b), aShape, bShape);
        Close.Assert(Read(da), expectedA, GradAtolOfTier, GradRtol, $"{op} da only");
        var db = Zeros(b.Length);
        Backend.BinaryBackward(op, null, db, Buf(dy), Buf(a), Buf(b), aShape, bShape);
        Close.Assert(Read(db), expectedB, GradAtolOfTier, GradRtol, $"{op} db only");
    }

    [Test]
    public void InPlace([Values] BinaryOp op)
    {
        // y = a op b written over a, for a same-shape b and for a broadcast row b.
        foreach (int[] bShape in new[] { new[] { 6, 50 }, new[] { 50 } })
        {
            int[] aShape = [6, 50];
            var (a, b) = Operands(aShape, bShape, op);
            var expected = new double[a.Length];
            BinaryReference.Forward(op, expected, a, b, aShape, bShape);
            var y = Buf(a);
            Backend.Binary(op, y, y, Buf(b), aShape, bShape);
            Close.Assert(Read(y), expected, Atol, Rtol, $"{op} in place, b {Check.Shape(bShape)}");
        }
    }

    [Test]
    public void GradientMayOverwriteDy([Values] BinaryOp op)
    {
        int[] aShape = [4, 9], bShape = [9];
        var (a, b) = Operands(aShape, bShape, op);
        var dy = TestData.Uniform(6, 36);
        var expectedA = new double[a.Length];
        var expectedB = new double[b.Length];
        BinaryReference.Backward(op, expectedA, expectedB, dy, a, b, aShape, bShape);
        var g = Buf(dy);
        var db = Zeros(9);
        Backend.BinaryBackward(op, g, db, g, Buf(a), Buf(b), aShape, bShape);
        Close.Assert(Read(g), expectedA, GradAtolOfTier, GradRtol, $"{op} da = dy");
        Close.Assert(Read(db), expectedB, GradAtolOfTier, GradRtol, $"{op} db");
    }

    [Test]
    [TestCase(1)]
    [TestCase(17)]
    [TestCase(1000)]
    [TestCase(100003, Category = HostScale)]
    public void ScaleAndAxpy(int n)
    {
        var x = TestData.Uniform(7, n);
        var y0 = TestData.Uniform(8, n);
        var scaled = new double[n];
        BinaryReference.Scale(scaled, x, 0.75f);
        var y = Zeros(n);
        Backend.Scale(y, Buf(x), 0.75f, n);
        Close.Assert(Read(y), scaled, Atol, Rtol, "scale");

        var axpy = (double[])y0.Clone();
        BinaryReference.Axpy(axpy, x, -1.5f);
        var acc = Buf(y0);
        Backend.Axpy(acc, Buf(x), -1.5f, n);
        Close.Assert(Read(acc), axpy, Atol, Rtol, "axpy");   // one FMA: a single rounding

        var inPlace = Buf(x);
        Backend.Scale(inPlace, inPlace, 0.75f, n);
        Close.Assert(Read(inPlace), scaled, Atol, Rtol, "scale in place");
    }

    [Test]
    public void BadArguments()
    {
        var a = Zeros(12);
        Expect("binary", () => Backend.Binary(BinaryOp.Add, Zeros(12), a, Zeros(5), [3, 4], [5]));          // do not broadcast
        Expect("binary", () => Backend.Binary(BinaryOp.Add, Zeros(12), a, Zeros(3), [3, 4], [4]));          // b length
        Expect("binary", () => Backend.Binary(BinaryOp.Add, Zeros(11), a, Zeros(4), [3, 4], [4]));         // y length
        Expect("binary", () => Backend.Binary(BinaryOp.Mul, Zeros(12), Zeros(12, DType.I32), Zeros(4), [3, 4], [4]));
        Expect("binary", () => Backend.Binary(BinaryOp.Mul, Zeros(12), a, Zeros(4), [3, 0, 4], [4]));      // zero dim
        Expect("binary", () => Backend.Binary((BinaryOp)7, Zeros(12), a, Zeros(4), [3, 4], [4]));
        Expect("binary backward", () => Backend.BinaryBackward(BinaryOp.Add, Zeros(12), Zeros(3), Zeros(12), a, Zeros(4), [3, 4], [4]));
        Expect("binary backward", () => Backend.BinaryBackward(BinaryOp.Add, Zeros(12), null, Zeros(13), a, Zeros(4), [3, 4], [4]));
        Expect("scale", () => Backend.Scale(Zeros(5), Zeros(6), 1, 5));
        Expect("axpy", () => Backend.Axpy(Zeros(5), Zeros(5, DType.BF16), 1, 5));
        Expect("axpy", () => Backend.Axpy(Zeros(5), Zeros(5), 1, -1));
    }

    static void Expect(string op, TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
    }
}

[TestFixture]
public class BinaryGradChecks
{
    [Test]
    public void Backward([Values] BinaryOp op)
    {
        // Both operands broadcast: a (3, 1, 4) and b (2, 1) give (3, 2, 4).
        int[] aShape = [3, 1, 4], bShape = [2, 1];
        var a = TestData.Uniform(1, 12, 2);
        var b = Array.ConvertAll(TestData.Uniform(2, 2, 2), v => Math.CopySign(0.5, v) + v);
        GradCheck.Check([a, b],
            inputs => { var y = new double[24]; BinaryReference.Forward(op, y, inputs[0], inputs[1], aShape, bShape); return y; },
            (inputs, dy) =>
            {
                var da = new double[12];
                var db = new double[2];
                BinaryReference.Backward(op, da, db, dy, inputs[0], inputs[1], aShape, bShape);
                return [da, db];
            },
            op.ToString());
    }
}
