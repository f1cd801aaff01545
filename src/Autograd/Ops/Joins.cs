// Joining and splitting along any axis on the Concat/Slice kernels: concat, narrow and chunk into two halves.
namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>torch.cat([a, b], axis): shapes equal except along <paramref name="axis"/> (negative counts from the end).</summary>
    public static Tensor Concat(Tensor a,   // (..., A, ...)
        Tensor b,                           // (..., B, ...)
        int axis)                           // → (..., A + B, ...)
    {
        int ax = axis < 0 ? axis + a.Rank : axis;
        bool fits = a.Rank == b.Rank && ax >= 0 && ax < a.Rank && a.DType == b.DType && a.Dim(ax) > 0 && b.Dim(ax) > 0;
        for (int d = 0; fits && d < a.Rank; d++) fits = d == ax || a.Dim(d) == b.Dim(d);
        if (!fits)
            throw new ArgumentException($"concat: {a} and {b} cannot be joined along axis {axis} (same rank and dtype, equal sizes off the axis)");
        a = Contiguous(a);
        b = Contiguous(b);
        var (outer, inner) = AroundAxis(a.Shape, ax);
        int aAxis = a.Dim(ax), bAxis = b.Dim(ax);
        var yShape = a.Shape.ToArray();
        yShape[ax] = aAxis + bAxis;
        var y = Tensor.Empty(a.Backend, a.DType, yShape);
        a.Backend.Concat(y.Storage, a.Storage, b.Storage, outer, aAxis, bAxis, inner);
        if (Tape.Needs(a, b))
            Tape.Record("concat", y, dy =>
            {   // each input's gradient is its own slice of dy
                var da = Tensor.EmptyLike(a);
                a.Backend.Slice(da.Storage, dy.Storage, outer, aAxis + bAxis, 0, aAxis, inner);
                Gradients.Accumulate(a, da);
                var db = Tensor.EmptyLike(b);
                a.Backend.Slice(db.Storage, dy.Storage, outer, aAxis + bAxis, aAxis, bAxis, inner);
                Gradients.Accumulate(b, db);
            });
        return y;
    }

    /// <summary>x.narrow(axis, start, length): the elements start ≤ i &lt; start + length along the axis. When every
    /// axis before <paramref name="axis"/> has size 1 (axis 0, say), those elements are one contiguous run of x's
    /// buffer and the result is a view of it, as in torch; otherwise a new tensor.</summary>
    public static Tensor Narrow(Tensor x,   // (..., X, ...) → (..., length, ...)
        int axis, int start, int length)
    {
        int ax = axis < 0 ? axis + x.Rank : axis;
        if (ax < 0 || ax >= x.Rank || length <= 0 || start < 0 || start > x.Dim(ax) - length)
            throw new ArgumentException($"narrow: [{start}, {(long)start + length}) along axis {axis} is not a non-empty range inside {x}");
        x = Contiguous(x);
        var (outer, inner) = AroundAxis(x.Shape, ax);
        int xAxis = x.Dim(ax);
        var yShape = x.Shape.ToArray();
        yShape[ax] = length;
        Tensor y;
        if (outer == 1)
            y = x.View(x.Storage.Slice((long)start * inner, (long)length * inner), yShape, Tensor.RowMajorStrides(yShape));
        else
        {
            y = Tensor.Empty(x.Backend, x.DType, yShape);
            x.Backend.Slice(y.Storage, x.Storage, outer, xAxis, start, length, inner);
        }
        if (Tape.Needs(x))
            Tape.Record("narrow", y, dy =>
            {   // dx = dy inside the range, 0 outside
                var dx = Tensor.EmptyLike(x);
                x.Backend.SliceBackward(dx.Storage, dy.Storage, outer, xAxis, start, length, inner);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>torch.chunk(x, 2, axis) for an even axis: the first and the second half (views when Narrow's are).</summary>
    public static (Tensor, Tensor) Chunk2(Tensor x, int axis)   // (..., 2·X, ...) → twice (..., X, ...)
    {
        int ax = axis < 0 ? axis + x.Rank : axis;
        if (ax < 0 || ax >= x.Rank || x.Dim(ax) % 2 != 0 || x.Dim(ax) == 0)
            throw new ArgumentException($"chunk2: axis {axis} of {x} must exist and have an even, non-zero length");
        int half = x.Dim(ax) / 2;
        return (Narrow(x, ax, 0, half), Narrow(x, ax, half, half));
    }

    /// <summary>A shape seen as (outer, shape[axis], inner): the products of the dims before and after the axis.</summary>
    static (int Outer, int Inner) AroundAxis(ReadOnlySpan<int> shape, int axis)
    {
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= shape[d];
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        return (checked((int)outer), checked((int)inner));
    }
}
