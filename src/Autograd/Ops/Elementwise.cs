// Broadcasting add/sub/mul/div and scaling by a constant, with their backward.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    public static Tensor Add(Tensor a, Tensor b) => Binary(BinaryOp.Add, a, b);
    public static Tensor Sub(Tensor a, Tensor b) => Binary(BinaryOp.Sub, a, b);
    public static Tensor Mul(Tensor a, Tensor b) => Binary(BinaryOp.Mul, a, b);
    public static Tensor Div(Tensor a, Tensor b) => Binary(BinaryOp.Div, a, b);

    /// <summary>y = a ∘ b with NumPy broadcasting (shapes right-aligned, dims of 1 stretched); the backward sums each
    /// gradient over the dims its operand was broadcast along.</summary>
    public static Tensor Binary(BinaryOp op, Tensor a, Tensor b)
    {
        a = Contiguous(a);
        b = Contiguous(b);
        var y = Tensor.Empty(a.Backend, Broadcasting.Shape(op.ToString().ToLowerInvariant(), a.Shape, b.Shape));
        a.Backend.Binary(op, y.Storage, a.Storage, b.Storage, a.Shape, b.Shape);
        if (Tape.Needs(a, b))
            Tape.Record(op.ToString().ToLowerInvariant(), y, dy =>
            {
                var da = a.RequiresGrad ? Tensor.EmptyLike(a) : null;
                var db = b.RequiresGrad ? Tensor.EmptyLike(b) : null;
                a.Backend.BinaryBackward(op, da?.Storage, db?.Storage, dy.Storage, a.Storage, b.Storage, a.Shape, b.Shape);
                if (da != null) Gradients.Accumulate(a, da);
                if (db != null) Gradients.Accumulate(b, db);
            });
        return y;
    }

    /// <summary>y = alpha·x.</summary>
    public static Tensor Scale(Tensor x, float alpha)
    {
        x = Contiguous(x);
        var y = Tensor.EmptyLike(x);
        x.Backend.Scale(y.Storage, x.Storage, alpha, x.Length);
        if (Tape.Needs(x))
            Tape.Record("scale", y, dy =>
            {
                var dx = Tensor.EmptyLike(x);
                x.Backend.Scale(dx.Storage, dy.Storage, alpha, x.Length);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }
}
