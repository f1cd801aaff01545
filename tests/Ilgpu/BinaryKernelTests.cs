// The CUDA tier's broadcasting binary ops and ReduceSum on the CPU emulator against BinaryReference and ReduceReference.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class BinaryKernelTests : EmulatorTest
{
    // One f32 operation per element (correctly rounded); the backward adds an f32 sum of at most 20 terms of size ≤ 2.
    const double Atol = 1e-6, Rtol = 1e-6, SumAtol = 1e-5, SumRtol = 1e-5;

    // Equal shapes, a trailing-vector broadcast, both operands broadcast, a scalar, lower rank and the full 6 dims.
    static readonly (int[] A, int[] B)[] Shapes =
    [
        ([3, 5], [3, 5]), ([2, 3, 4], [4]), ([3, 1, 5], [1, 4, 1]), ([1], [7]), ([6, 1], [1]),
        ([2, 1, 3, 1, 2, 3], [1, 4, 1, 5, 1, 3]),
    ];

    static IEnumerable<TestCaseData> Cases() =>
        from s in Shapes from op in Enum.GetValues<BinaryOp>()
        select new TestCaseData(op, s.A, s.B).SetArgDisplayNames(op.ToString(), Check.Shape(s.A), Check.Shape(s.B));

    [TestCaseSource(nameof(Cases))]
    public void ForwardAndBackwardMatchTheReference(BinaryOp op, int[] aShape, int[] bShape)
    {
        int[] yShape = Broadcasting.Shape("test", aShape, bShape);
        long na = aShape.Aggregate(1L, (p, d) => p * d), nb = bShape.Aggregate(1L, (p, d) => p * d);
        long ny = yShape.Aggregate(1L, (p, d) => p * d);
        double[] a = TestData.Uniform(1, na), dy = TestData.Uniform(3, ny);
        double[] b = TestData.Uniform(2, nb, 0.5).Select(v => v + 1.5).ToArray();   // [1, 2): division stays well-conditioned
        using var ab = Acc.Allocate1D(TestData.ToFloat(a));
        using var bb = Acc.Allocate1D(TestData.ToFloat(b));
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var yb = Acc.Allocate1D<float>(ny);
        using var ta = Acc.Allocate1D<float>(ny);
        using var tb = Acc.Allocate1D<float>(ny);
        using var dab = Acc.Allocate1D<float>(na);
        using var dbb = Acc.Allocate1D<float>(nb);

        var p = BinaryKernels.Args.From(op, aShape, bShape);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>(
            BinaryKernels.Forward);
        var terms = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, BinaryKernels.Args>(BinaryKernels.BackwardTerms);
        var sum = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        forward(p.Count, yb.View, ab.View, bb.View, p);
        terms(p.Count, ta.View, tb.View, dyb.View, ab.View, bb.View, p);
        sum((int)na, dab.View, ta.View, ReduceKernels.Args.From(yShape, Padded(aShape, yShape.Length), 1f));
        sum((int)nb, dbb.View, tb.View, ReduceKernels.Args.From(yShape, Padded(bShape, yShape.Length), 1f));

        var y = new double[ny];
        double[] da = new double[na], db = new double[nb];
        BinaryReference.Forward(op, y, a, b, aShape, bShape);
        BinaryReference.Backward(op, da, db, dy, a, b, aShape, bShape);
        Close.Assert(yb.GetAsArray1D(), y, Atol, Rtol, $"{op} forward");
        Close.Assert(dab.GetAsArray1D(), da, SumAtol, SumRtol, $"{op} da");
        Close.Assert(dbb.GetAsArray1D(), db, SumAtol, SumRtol, $"{op} db");
    }

    [Test]
    public void BackwardWritesOnlyTheWantedTerm()
    {
        int[] shape = [9];
        using var ab = Acc.Allocate1D(TestData.ToFloat(TestData.Uniform(1, 9)));
        using var dyb = Acc.Allocate1D(TestData.ToFloat(TestData.Uniform(3, 9)));
        using var ta = Acc.Allocate1D<float>(9);
        using var placeholder = Acc.Allocate1D(new[] { 42f });
        var terms = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, BinaryKernels.Args>(BinaryKernels.BackwardTerms);
        var p = BinaryKernels.Args.From(BinaryOp.Mul, shape, shape, wantB: false);
        terms(p.Count, ta.View, placeholder.View, dyb.View, ab.View, ab.View, p);
        Assert.That(placeholder.GetAsArray1D()[0], Is.EqualTo(42f));
        var expected = TestData.Uniform(3, 9).Zip(TestData.Uniform(1, 9), (g, v) => (double)(float)(g * v)).ToArray();
        Close.Assert(ta.GetAsArray1D(), expected, 0, 1e-7, "da term of a·a with b unwanted");
    }

    static int[] Padded(int[] shape, int rank) => Enumerable.Repeat(1, rank - shape.Length).Concat(shape).ToArray();

    // Reduce any subset of dims, keep none, keep all, a size-1 dim, the last dim only, and a 6-dim shape.
    static readonly (int[] X, int[] Y)[] ReduceShapes =
    [
        ([4, 5, 6], [1, 5, 1]), ([4, 5, 6], [1, 1, 1]), ([4, 5, 6], [4, 5, 6]), ([3, 1, 7], [3, 1, 1]), ([33], [1]),
        ([2, 3, 2, 3, 2, 3], [2, 1, 2, 1, 1, 3]),
    ];

    [Test]
    public void ReduceSumMatchesTheReference([ValueSource(nameof(ReduceShapes))] (int[] X, int[] Y) s, [Values(1f, 0.125f)] float scale)
    {
        long nx = s.X.Aggregate(1L, (p, d) => p * d), ny = s.Y.Aggregate(1L, (p, d) => p * d);
        double[] x = TestData.Uniform(4, nx);
        using var xb = Acc.Allocate1D(TestData.ToFloat(x));
        using var yb = Acc.Allocate1D<float>(ny);
        var sum = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        var p = ReduceKernels.Args.From(s.X, s.Y, scale);
        sum(p.Count, yb.View, xb.View, p);
        var y = new double[ny];
        ReduceReference.Sum(y, x, s.X, s.Y, scale);
        Close.Assert(yb.GetAsArray1D(), y, SumAtol, SumRtol, $"reduce {Check.Shape(s.X)} -> {Check.Shape(s.Y)}");
    }
}
