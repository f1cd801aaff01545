// The CUDA tier's strided copy, concat, slice and slice backward on the CPU emulator against the reference (bit-exact).
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class CopyKernelTests : EmulatorTest
{

    static int[] Iota(int n, int seed) => Enumerable.Range(0, n).Select(v => v * 7919 + seed).ToArray();

    // A transpose with an offset, a broadcast (stride 0), a size-1 dim, and a 6-dim gather with gaps.
    static readonly (int[] Shape, long[] Strides, long Offset)[] Layouts =
    [
        ([5, 3], [1, 5], 2), ([4, 6], [0, 1], 3), ([3, 1, 4], [4, 100, 1], 0), ([2, 2, 3, 1, 2, 2], [150, 60, 17, 5, 4, 1], 1),
    ];

    [Test]
    public void StridedCopyMovesEveryElementLikeTheReference([ValueSource(nameof(Layouts))] (int[] Shape, long[] Strides, long Offset) l)
    {
        const int srcLength = 400;
        int n = l.Shape.Aggregate(1, (p, d) => p * d);
        var p = CopyKernels.StridedArgs.From(l.Shape, l.Strides, l.Offset);

        int[] src = Iota(srcLength, 1);
        using var srcb = Acc.Allocate1D(src);
        using var dstb = Acc.Allocate1D<int>(n);
        var copy32 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy32);
        copy32(p.Count, dstb.View, srcb.View, p);
        var expected = new int[n];
        CopyReference.StridedCopy<int>(expected, src, l.Shape, l.Strides, l.Offset);
        Assert.That(dstb.GetAsArray1D(), Is.EqualTo(expected), "32-bit");

        ushort[] src16 = src.Select(v => (ushort)v).ToArray();
        using var src16b = Acc.Allocate1D(src16);
        using var dst16b = Acc.Allocate1D<ushort>(n);
        var copy16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy16);
        copy16(p.Count, dst16b.View, src16b.View, p);
        var expected16 = new ushort[n];
        CopyReference.StridedCopy<ushort>(expected16, src16, l.Shape, l.Strides, l.Offset);
        Assert.That(dst16b.GetAsArray1D(), Is.EqualTo(expected16), "16-bit");
    }

    [Test]
    public void ConcatSliceAndSliceBackwardMatchTheReference([Values(1, 3)] int outer, [Values(1, 5)] int inner)
    {
        const int aAxis = 2, bAxis = 3, xAxis = 6, start = 1, yAxis = 4;
        int[] a = Iota(outer * aAxis * inner, 1), b = Iota(outer * bAxis * inner, 2), x = Iota(outer * xAxis * inner, 3);
        using var ab = Acc.Allocate1D(a);
        using var bb = Acc.Allocate1D(b);
        using var xb = Acc.Allocate1D(x);
        using var cat = Acc.Allocate1D<int>(outer * (aAxis + bAxis) * inner);
        using var sliced = Acc.Allocate1D<int>(outer * yAxis * inner);
        var concat = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Concat32);
        var slice = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Slice32);
        concat((int)cat.Length, cat.View, ab.View, bb.View, CopyKernels.AxisArgs.Concat(aAxis, bAxis, inner));
        slice((int)sliced.Length, sliced.View, xb.View, CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner));
        var expectedCat = new int[cat.Length];
        var expectedSlice = new int[sliced.Length];
        ConcatSliceReference.Concat<int>(expectedCat, a, b, outer, aAxis, bAxis, inner);
        ConcatSliceReference.Slice<int>(expectedSlice, x, outer, xAxis, start, yAxis, inner);
        Assert.That(cat.GetAsArray1D(), Is.EqualTo(expectedCat), "concat 32-bit");
        Assert.That(sliced.GetAsArray1D(), Is.EqualTo(expectedSlice), "slice 32-bit");

        ushort[] a16 = a.Select(v => (ushort)v).ToArray(), b16 = b.Select(v => (ushort)v).ToArray(), x16 = x.Select(v => (ushort)v).ToArray();
        using var a16b = Acc.Allocate1D(a16);
        using var b16b = Acc.Allocate1D(b16);
        using var x16b = Acc.Allocate1D(x16);
        using var cat16 = Acc.Allocate1D<ushort>(cat.Length);
        using var sliced16 = Acc.Allocate1D<ushort>(sliced.Length);
        var concat16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Concat16);
        var slice16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Slice16);
        concat16((int)cat16.Length, cat16.View, a16b.View, b16b.View, CopyKernels.AxisArgs.Concat(aAxis, bAxis, inner));
        slice16((int)sliced16.Length, sliced16.View, x16b.View, CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner));
        Assert.That(cat16.GetAsArray1D(), Is.EqualTo(expectedCat.Select(v => (ushort)v).ToArray()), "concat 16-bit");
        Assert.That(sliced16.GetAsArray1D(), Is.EqualTo(expectedSlice.Select(v => (ushort)v).ToArray()), "slice 16-bit");

        double[] dy = TestData.Uniform(4, outer * yAxis * inner);
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var dxb = Acc.Allocate1D(Enumerable.Repeat(9f, outer * xAxis * inner).ToArray());   // stale values must be cleared
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, CopyKernels.AxisArgs>(CopyKernels.SliceBackward);
        backward((int)dxb.Length, dxb.View, dyb.View, CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner));
        var dx = new double[dxb.Length];
        ConcatSliceReference.SliceBackward<double>(dx, dy, outer, xAxis, start, yAxis, inner);
        Close.Assert(dxb.GetAsArray1D(), dx, 0, 0, "slice backward");
    }
}
