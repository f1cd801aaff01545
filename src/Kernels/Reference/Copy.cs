// Fill, Copy and StridedCopy: data movement for any dtype, one element at a time.
namespace DreamBooth.Kernels.Reference;

public static class CopyReference
{
    /// <summary>The bits Fill stores in one element: f32 as given; f16 and bf16 rounded to nearest even (see
    /// <see cref="CastReference"/>); i32 is (int)value, truncated toward zero and saturating (NaN gives 0).</summary>
    public static uint FillBits(DType dtype, float value) => dtype switch
    {
        DType.F32 => BitConverter.SingleToUInt32Bits(value),
        DType.F16 => CastReference.FloatToHalf(value),
        DType.BF16 => CastReference.FloatToBFloat16(value),
        DType.I32 => (uint)(int)value,
        _ => throw new ArgumentException($"fill: unknown dtype {dtype}"),
    };

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

    public static void ValidateFill(DeviceBuffer y) => ArgumentNullException.ThrowIfNull(y, "fill: y");

    public static void ValidateCopy(DeviceBuffer dst, DeviceBuffer src)
    {
        ArgumentNullException.ThrowIfNull(src, "copy: src");
        Check.Exactly("copy", "dst", dst, src.DType, src.Length, $"src {src}");
    }

    /// <summary>Checks the whole source footprint up front, so a bad stride fails here and never reads or writes
    /// outside a buffer. Strides must be non-negative, so the largest source index is offset + Σ (shape[d]-1)·strides[d].</summary>
    public static void ValidateStridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset)
    {
        const string op = "strided copy";
        ArgumentNullException.ThrowIfNull(src, $"{op}: src");
        if (shape.Length == 0 || strides.Length != shape.Length)
            throw new ArgumentException($"{op}: shape {Check.Shape(shape)} needs one stride per axis (at least one axis), got {strides.Length}");
        long n = Check.Count(op, "dst", shape);
        Check.Exactly(op, "dst", dst, src.DType, n, $"shape {Check.Shape(shape)}");
        string layout = $"shape {Check.Shape(shape)} strides ({string.Join(", ", strides.ToArray())}) offset {offset}";
        if (offset < 0) throw new ArgumentException($"{op}: negative source offset in {layout}");
        long last = offset;
        for (int d = 0; d < shape.Length; d++)
        {
            if (strides[d] < 0) throw new ArgumentException($"{op}: negative stride in {layout}");
            if (strides[d] > (long.MaxValue - last) / Math.Max(shape[d] - 1, 1))
                throw new ArgumentException($"{op}: source index overflows in {layout}");
            last += (shape[d] - 1) * strides[d];
        }
        if (last >= src.Length)
            throw new ArgumentException($"{op}: {layout} reaches source element {last}, outside src {src}");
        Check.AtLeast(op, "src", src, src.DType, last + 1, layout);
    }
}

public sealed partial class ReferenceBackend
{
    public void Fill(DeviceBuffer y, float value)
    {
        CopyReference.ValidateFill(y);
        uint bits = CopyReference.FillBits(y.DType, value);
        if (y.DType.Size() == 4) Host(y).AsSpan<uint>().Fill(bits);
        else Host(y).AsSpan<ushort>().Fill((ushort)bits);
    }

    public void Copy(DeviceBuffer dst, DeviceBuffer src)
    {
        CopyReference.ValidateCopy(dst, src);
        Host(src).AsSpan<byte>().CopyTo(Host(dst).AsSpan<byte>());
    }

    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset)
    {
        CopyReference.ValidateStridedCopy(dst, src, shape, srcStrides, srcOffset);
        if (src.DType.Size() == 4)
            CopyReference.StridedCopy(Host(dst).AsSpan<uint>(), Host(src).AsSpan<uint>(), shape, srcStrides, srcOffset);
        else
            CopyReference.StridedCopy(Host(dst).AsSpan<ushort>(), Host(src).AsSpan<ushort>(), shape, srcStrides, srcOffset);
    }
}
