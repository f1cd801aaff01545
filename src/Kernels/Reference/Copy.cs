// Fill, Copy and StridedCopy: data movement for any dtype, one element at a time.
namespace DreamBooth.Kernels.Reference;

public static class CopyReference
{
    /// <summary>dst[i] = src[offset + Σ_d idx_d(i) · strides[d]], where idx(i) is the multi-index of element i of the
    /// contiguous dst (last axis fastest). Works for any element type; strides are in elements.</summary>
    public static void StridedCopy<T>(Span<T> dst,            // (shape)
        ReadOnlySpan<T> src,                                     // any layout reached by (offset, strides)
        ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset)
    {
        Span<int> idx = stackalloc int[shape.Length];
        for (int i = 0; i < dst.Length; i++)
        {
            long s = offset;
            for (int d = 0; d < shape.Length; d++) s += idx[d] * strides[d];
            dst[i] = src[checked((int)s)];
            for (int d = shape.Length - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;   // advance the odometer
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void Fill(DeviceBuffer y, float value)
    {
        CopyChecks.ValidateFill(y);
        uint bits = HalfPrecision.FillBits(y.DType, value);
        if (y.DType.Size() == 4) Host(y).AsSpan<uint>().Fill(bits);
        else Host(y).AsSpan<ushort>().Fill((ushort)bits);
    }

    public void Copy(DeviceBuffer dst, DeviceBuffer src)
    {
        CopyChecks.ValidateCopy(dst, src);
        Host(src).AsSpan<byte>().CopyTo(Host(dst).AsSpan<byte>());
    }

    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset)
    {
        CopyChecks.ValidateStridedCopy(dst, src, shape, srcStrides, srcOffset);
        if (src.DType.Size() == 4)
            CopyReference.StridedCopy(Host(dst).AsSpan<uint>(), Host(src).AsSpan<uint>(), shape, srcStrides, srcOffset);
        else
            CopyReference.StridedCopy(Host(dst).AsSpan<ushort>(), Host(src).AsSpan<ushort>(), shape, srcStrides, srcOffset);
    }
}
