// Pointwise activations (SiLU, the GELUs) and GEGLU on their kernels, with their backward.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    public static Tensor Silu(Tensor x) => Unary(UnaryOp.Silu, x);
    public static Tensor Gelu(Tensor x) => Unary(UnaryOp.Gelu, x);
    public static Tensor GeluTanh(Tensor x) => Unary(UnaryOp.GeluTanh, x);
    public static Tensor QuickGelu(Tensor x) => Unary(UnaryOp.QuickGelu, x);

    /// <summary>y = f(x) elementwise for one of the activations in <see cref="UnaryOp"/>.</summary>
    public static Tensor Unary(UnaryOp op, Tensor x)   // (...)
    {
        x = Contiguous(x);
        var y = Tensor.EmptyLike(x);
        x.Backend.Unary(op, y.Storage, x.Storage, x.Length);
        if (Tape.Needs(x))
            Tape.Record(op.ToString().ToLowerInvariant(), y, dy =>
            {   // dx = f'(x)·dy, f' evaluated from the saved input
                var dx = Tensor.EmptyLike(x);
                x.Backend.UnaryBackward(op, dx.Storage, dy.Storage, x.Storage, x.Length);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>diffusers' GEGLU after its projection: x = [h | gate] along the last axis, y = h·gelu(gate).</summary>
    public static Tensor Geglu(Tensor x)   // (..., 2·D) → (..., D)
    {
        if (x.Rank < 1 || x.Dim(-1) % 2 != 0 || x.Dim(-1) == 0)
            throw new ArgumentException($"geglu: x {x} must have an even, non-zero last axis (..., 2·D)");
        x = Contiguous(x);
        int dim = x.Dim(-1) / 2, rows = checked((int)(x.Length / (2L * dim)));
        var yShape = x.Shape.ToArray();
        yShape[^1] = dim;
        var y = Tensor.Empty(x.Backend, yShape);
        x.Backend.Geglu(y.Storage, x.Storage, rows, dim);
        if (Tape.Needs(x))
            Tape.Record("geglu", y, dy =>
            {   // dh = dy·gelu(gate), dgate = dy·h·gelu'(gate)
                var dx = Tensor.EmptyLike(x);
                x.Backend.GegluBackward(dx.Storage, dy.Storage, x.Storage, rows, dim);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }
}
