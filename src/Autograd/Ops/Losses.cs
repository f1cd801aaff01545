// Losses and reductions: mean squared error, sum and mean over chosen axes.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>mean((a − b)²) over all elements → a one-element tensor (the diffusion loss).</summary>
    public static Tensor MseLoss(Tensor a, Tensor b)
    {
        if (!a.Shape.SequenceEqual(b.Shape)) throw new ArgumentException($"mse loss: {a} and {b} differ in shape");
        a = Contiguous(a);
        b = Contiguous(b);
        var loss = Tensor.Empty(a.Backend, 1);
        a.Backend.MseLoss(loss.Storage, a.Storage, b.Storage, a.Length);
        if (Tape.Needs(a, b))
            Tape.Record("mse loss", loss, dLoss =>
            {   // d/da = g·2(a − b)/n, d/db = −d/da, where g = dLoss stays on the device (reading it would wait for
                // the whole forward): the kernel gives 2(a − b)/n, then one broadcast multiply by the (1) tensor g
                var da = Tensor.EmptyLike(a);
                a.Backend.MseLossBackward(da.Storage, a.Storage, b.Storage, 1f, a.Length);
                a.Backend.Binary(BinaryOp.Mul, da.Storage, da.Storage, dLoss.Storage, da.Shape, dLoss.Shape);
                if (b.RequiresGrad)
                {
                    var db = Tensor.EmptyLike(b);
                    a.Backend.Scale(db.Storage, da.Storage, -1f, a.Length);
                    Gradients.Accumulate(b, db);
                }
                Gradients.Accumulate(a, da);
            });
        return loss;
    }

    /// <summary>Σ over the axes listed (all when none; negative counts from the end), keeping them as size-1 dims.</summary>
    public static Tensor Sum(Tensor x, params int[] axes) => Reduce("sum", x, mean: false, axes);

    /// <summary>Mean over the axes listed (all when none), keeping them as size-1 dims.</summary>
    public static Tensor Mean(Tensor x, params int[] axes) => Reduce("mean", x, mean: true, axes);

    static Tensor Reduce(string op, Tensor x,   // (...) → (...) with the reduced axes of size 1
        bool mean, int[] axes)
    {
        var yShape = x.Shape.ToArray();
        if (axes.Length == 0) Array.Fill(yShape, 1);
        foreach (int axis in axes)
        {
            int ax = axis < 0 ? axis + x.Rank : axis;
            if (ax < 0 || ax >= x.Rank) throw new ArgumentException($"{op}: axis {axis} is not an axis of {x}");
            yShape[ax] = 1;
        }
        long yLength = Tensor.ShapeLength(yShape);
        float scale = mean ? 1f / (yLength == 0 ? 1 : x.Length / yLength) : 1f;
        x = Contiguous(x);
        var y = Tensor.Empty(x.Backend, yShape);
        x.Backend.ReduceSum(y.Storage, x.Storage, x.Shape, yShape, scale);
        if (Tape.Needs(x))
            Tape.Record(op, y, dy =>
            {   // every x element receives scale·dy of its reduced position: a broadcast add onto zeros
                var dx = Tensor.ZerosLike(x);
                x.Backend.Binary(BinaryOp.Add, dx.Storage, dx.Storage, dy.Storage, x.Shape, dy.Shape);
                x.Backend.Scale(dx.Storage, dx.Storage, scale, dx.Length);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }
}
