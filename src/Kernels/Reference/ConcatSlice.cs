// Concat and Slice along the middle axis of (outer, axis, inner), and Slice's backward; any element type.
namespace DreamBooth.Kernels.Reference;

/// <summary>Every tensor is viewed as (outer, axis, inner): the op works on the middle axis. Concat's backward is two
/// Slices (one per input), so it needs no kernel of its own. The generic methods work for any element type; the
/// backends call them on raw bytes with inner scaled by the element size, which moves the same bytes.</summary>
public static class ConcatSliceReference
{
    /// <summary>y[o] = [a[o] ; b[o]] along the axis.</summary>
    public static void Concat<T>(Span<T> y,   // (outer, aAxis + bAxis, inner)
        ReadOnlySpan<T> a,                     // (outer, aAxis, inner)
        ReadOnlySpan<T> b,                     // (outer, bAxis, inner)
        int outer, int aAxis, int bAxis, int inner)
    {
        int aRow = aAxis * inner, bRow = bAxis * inner;
        for (int o = 0; o < outer; o++)
        {
            a.Slice(o * aRow, aRow).CopyTo(y.Slice(o * (aRow + bRow), aRow));
            b.Slice(o * bRow, bRow).CopyTo(y.Slice(o * (aRow + bRow) + aRow, bRow));
        }
    }

    /// <summary>y = x[:, start : start + yAxis, :].</summary>
    public static void Slice<T>(Span<T> y,    // (outer, yAxis, inner)
        ReadOnlySpan<T> x,                     // (outer, xAxis, inner)
        int outer, int xAxis, int start, int yAxis, int inner)
    {
        for (int o = 0; o < outer; o++)
            x.Slice((o * xAxis + start) * inner, yAxis * inner).CopyTo(y.Slice(o * yAxis * inner, yAxis * inner));
    }

    /// <summary>dx = dy inside the slice, 0 elsewhere (dx overwritten): the slice's rows pass their gradient through.</summary>
    public static void SliceBackward<T>(Span<T> dx,   // (outer, xAxis, inner)
        ReadOnlySpan<T> dy,                            // (outer, yAxis, inner)
        int outer, int xAxis, int start, int yAxis, int inner)
    {
        dx.Clear();
        for (int o = 0; o < outer; o++)
            dy.Slice(o * yAxis * inner, yAxis * inner).CopyTo(dx.Slice((o * xAxis + start) * inner, yAxis * inner));
    }
}

public sealed partial class ReferenceBackend
{
    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        ConcatSliceChecks.ValidateConcat(y, a, b, outer, aAxis, bAxis, inner);
        int size = a.DType.Size();
        ConcatSliceReference.Concat(Host(y).AsSpan<byte>(), Host(a).AsSpan<byte>(), Host(b).AsSpan<byte>(), outer, aAxis, bAxis, inner * size);
    }

    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner)
    {
        ConcatSliceChecks.ValidateSlice("slice", y, x, outer, xAxis, start, yAxis, inner);
        int size = x.DType.Size();
        ConcatSliceReference.Slice(Host(y).AsSpan<byte>(), Host(x).AsSpan<byte>(), outer, xAxis, start, yAxis, inner * size);
    }

    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner)
    {
        ConcatSliceChecks.ValidateSlice("slice backward", dy, dx, outer, xAxis, start, yAxis, inner, "dy", "dx");
        int size = dx.DType.Size();
        ConcatSliceReference.SliceBackward(Host(dx).AsSpan<byte>(), Host(dy).AsSpan<byte>(), outer, xAxis, start, yAxis, inner * size);
    }
}
