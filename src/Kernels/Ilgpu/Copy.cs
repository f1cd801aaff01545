// CUDA-tier data movement: strided copy (up to 6 dims), concat, slice and slice backward, for 4- and 2-byte elements.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.StridedArgs>? _strided32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.StridedArgs>? _strided16;
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>? _concat32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>? _concat16;
    Action<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>? _slice32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>? _slice16;
    Action<Index1D, ArrayView<float>, ArrayView<float>, CopyKernels.AxisArgs>? _sliceBackward;

    public void Copy(DeviceBuffer dst, DeviceBuffer src)
    {
        CopyChecks.ValidateCopy(dst, src);
        CopyBytes(Buf("copy", dst).View, Buf("copy", src).View);
    }

    void CopyBytes(ArrayView<byte> dst, ArrayView<byte> src)
    {
        if (src.Length > 0) src.CopyTo(Stream, dst);
    }

    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset)
    {
        const string name = "strided copy";
        CopyChecks.ValidateStridedCopy(dst, src, shape, srcStrides, srcOffset);
        IlgpuBuffer d = Buf(name, dst), s = Buf(name, src);
        var args = CopyKernels.StridedArgs.From(shape, srcStrides, srcOffset);
        if (args.Count == 0) return;
        if (dst.DType.Size() == 4)
        {
            _strided32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy32);
            _strided32(args.Count, d.I32, s.I32, args);
        }
        else
        {
            _strided16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy16);
            _strided16(args.Count, d.U16, s.U16, args);
        }
    }

    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        const string name = "concat";
        ConcatSliceChecks.ValidateConcat(y, a, b, outer, aAxis, bAxis, inner);
        IlgpuBuffer vy = Buf(name, y), va = Buf(name, a), vb = Buf(name, b);
        var args = CopyKernels.AxisArgs.Concat(aAxis, bAxis, inner);
        int n = Count(name, y.Length);
        if (y.DType.Size() == 4)
        {
            _concat32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Concat32);
            _concat32(n, vy.I32, va.I32, vb.I32, args);
        }
        else
        {
            _concat16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Concat16);
            _concat16(n, vy.U16, va.U16, vb.U16, args);
        }
    }

    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner)
    {
        const string name = "slice";
        ConcatSliceChecks.ValidateSlice(name, y, x, outer, xAxis, start, yAxis, inner);
        IlgpuBuffer vy = Buf(name, y), vx = Buf(name, x);
        var args = CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner);
        int n = Count(name, y.Length);
        if (y.DType.Size() == 4)
        {
            _slice32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Slice32);
            _slice32(n, vy.I32, vx.I32, args);
        }
        else
        {
            _slice16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Slice16);
            _slice16(n, vy.U16, vx.U16, args);
        }
    }

    /// <summary>4-byte dtypes: the slice backward kernel moves the bits (as f32, a plain load and store). 2-byte dtypes
    /// (no gradient flows through them in training): dx zeroed, then one device copy per outer row.</summary>
    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner)
    {
        const string name = "slice backward";
        ConcatSliceChecks.ValidateSlice(name, dy, dx, outer, xAxis, start, yAxis, inner, "dy", "dx");
        IlgpuBuffer vdx = Buf(name, dx), vdy = Buf(name, dy);
        if (dx.DType.Size() == 4)
        {
            _sliceBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, CopyKernels.AxisArgs>(CopyKernels.SliceBackward);
            _sliceBackward(Count(name, dx.Length), vdx.F32, vdy.F32, CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner));
            return;
        }
        long size = dx.DType.Size(), xRow = (long)xAxis * inner * size, yRow = (long)yAxis * inner * size, before = (long)start * inner * size;
        vdx.View.MemSetToZero(Stream);
        for (long o = 0; o < outer; o++)
            CopyBytes(vdx.View.SubView(o * xRow + before, yRow), vdy.View.SubView(o * yRow, yRow));
    }
}

/// <summary>
/// Every kernel runs one thread per destination element, so writes are coalesced and each element is written exactly
/// once. Elements are moved as raw bits: the 32-bit kernels serve f32 and i32, the 16-bit ones f16 and bf16 (or 4-byte
/// kernels on 2-byte data when the contiguous run is even). Concat and slice view tensors as (outer, axis, inner) and
/// work on the middle axis (ConcatSliceReference); consecutive threads walk inner, so reads are coalesced too.
/// Element counts, and the source span of a strided copy, below 2^31 per launch.
/// </summary>
public static class CopyKernels
{
    /// <summary>dst (shape, contiguous) = src[offset + Σ idx_d·strides_d], strides in elements (CopyReference.StridedCopy).</summary>
    public readonly record struct StridedArgs(Dims6 Shape, Strides6 Strides, int Offset)
    {
        public static StridedArgs From(ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset) =>
            new(Dims6.From(shape), Strides6.From(strides), checked((int)offset));

        public int Count => checked((int)Shape.Count);
    }

    [GpuKernel("strided_copy_b32")]
    public static void StridedCopy32(Index1D i, ArrayView<int> dst, ArrayView<int> src, StridedArgs p) => // dst (shape) src (any layout)
        dst[i] = src[p.Offset + p.Shape.Offset(i, p.Strides)];

    [GpuKernel("strided_copy_b16")]
    public static void StridedCopy16(Index1D i, ArrayView<ushort> dst, ArrayView<ushort> src, StridedArgs p) => // dst (shape) src (any layout)
        dst[i] = src[p.Offset + p.Shape.Offset(i, p.Strides)];

    /// <summary>Axis lengths of concat (A, B: the inputs' axes, Y = A + B) or slice (A: x's axis, B: y's axis, Start).</summary>
    public readonly record struct AxisArgs(int A, int B, int Start, int Inner)
    {
        public static AxisArgs Concat(int aAxis, int bAxis, int inner) => new(aAxis, bAxis, 0, inner);
        public static AxisArgs Slice(int xAxis, int start, int yAxis, int inner) => new(xAxis, yAxis, start, inner);
    }

    /// <summary>Thread i owns y[i] of (outer, A + B, inner): the first A·inner of each outer row come from a, the rest from b.</summary>
    [GpuKernel("concat_b32")]
    public static void Concat32(Index1D i, ArrayView<int> y, ArrayView<int> a, ArrayView<int> b, AxisArgs p) => // y (outer, A+B, inner) a (outer, A, inner) b (outer, B, inner)
        y[i] = ConcatElement(i, a, b, p);

    [GpuKernel("concat_b16")]
    public static void Concat16(Index1D i, ArrayView<ushort> y, ArrayView<ushort> a, ArrayView<ushort> b, AxisArgs p) => // y (outer, A+B, inner) a (outer, A, inner) b (outer, B, inner)
        y[i] = ConcatElement(i, a, b, p);

    static T ConcatElement<T>(int i, ArrayView<T> a, ArrayView<T> b, AxisArgs p) where T : unmanaged
    {
        int aRow = p.A * p.Inner, bRow = p.B * p.Inner, o = i / (aRow + bRow), r = i - o * (aRow + bRow);
        return r < aRow ? a[o * aRow + r] : b[o * bRow + r - aRow];
    }

    /// <summary>Thread i owns y[i] of (outer, B, inner) = x[:, Start : Start + B, :] with x (outer, A, inner).</summary>
    [GpuKernel("slice_b32")]
    public static void Slice32(Index1D i, ArrayView<int> y, ArrayView<int> x, AxisArgs p) => y[i] = x[SliceSource(i, p)]; // y (outer, B, inner) x (outer, A, inner)

    [GpuKernel("slice_b16")]
    public static void Slice16(Index1D i, ArrayView<ushort> y, ArrayView<ushort> x, AxisArgs p) => y[i] = x[SliceSource(i, p)]; // y (outer, B, inner) x (outer, A, inner)

    static int SliceSource(int i, AxisArgs p)
    {
        int yRow = p.B * p.Inner, o = i / yRow;
        return (o * p.A + p.Start) * p.Inner + i - o * yRow;
    }

    /// <summary>Thread i owns dx[i] of (outer, A, inner): dy's element inside the slice, 0 outside; dx is fully overwritten.</summary>
    [GpuKernel("slice_backward_f32")]
    public static void SliceBackward(Index1D i, ArrayView<float> dx, ArrayView<float> dy, AxisArgs p) // dx (outer, A, inner) dy (outer, B, inner)
    {
        int xRow = p.A * p.Inner, o = i / xRow, r = i - o * xRow, axis = r / p.Inner;
        dx[i] = axis >= p.Start && axis < p.Start + p.B ? dy[o * p.B * p.Inner + r - p.Start * p.Inner] : 0f;
    }
}
