// Shape ops: reshape and permute as views of the same buffer, contiguous copies, and a plain copy.
namespace DreamBooth.Autograd;

/// <summary>The ops on tensors, like torch.nn.functional: each records its backward on the <see cref="Tape"/>.</summary>
public static partial class F
{
    /// <summary>The same elements under a new shape (one dim may be -1); a view when x is contiguous, else a copy.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        shape = ResolveShape(x, shape);
        var c = Contiguous(x);
        var y = c.View(c.Storage, shape, Tensor.RowMajorStrides(shape));
        if (Tape.Needs(c))
            Tape.Record("reshape", y, dy => Gradients.Accumulate(c, CopyAs(dy, c.Shape.ToArray())));
        return y;
    }

    /// <summary>Axes reordered: y.Shape[i] = x.Shape[dims[i]]. A strided view; no data moves until an op needs it.</summary>
    public static Tensor Permute(Tensor x, params int[] dims)
    {
        if (dims.Length != x.Rank || dims.Order().Where((d, i) => d != i).Any())
            throw new ArgumentException($"permute: [{string.Join(", ", dims)}] is not a permutation of the {x.Rank} axes of {x}");
        var shape = new int[dims.Length];
        var strides = new long[dims.Length];
        for (int i = 0; i < dims.Length; i++) { shape[i] = x.Dim(dims[i]); strides[i] = x.Strides[dims[i]]; }
        var y = x.View(x.Storage, shape, strides);
        if (Tape.Needs(x))
            Tape.Record("permute", y, dy =>
            {
                // dx[..., i_a, ...] = dy[..., i_a at position p where dims[p] = a, ...]: read dy with its strides permuted back.
                var dyStrides = Tensor.RowMajorStrides(dy.Shape);
                var back = new long[dims.Length];
                for (int p = 0; p < dims.Length; p++) back[dims[p]] = dyStrides[p];
                var dx = Tensor.Empty(x.Backend, x.DType, x.Shape.ToArray());
                x.Backend.StridedCopy(dx.Storage, dy.Storage, x.Shape, back, 0);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>x when it is already contiguous, else a contiguous copy (its gradient passes through unchanged).</summary>
    public static Tensor Contiguous(Tensor x)
    {
        if (x.IsContiguous) return x;
        var y = Tensor.Empty(x.Backend, x.DType, x.Shape.ToArray());
        x.Backend.StridedCopy(y.Storage, x.Storage, x.Shape, x.Strides, 0);
        if (Tape.Needs(x))
            Tape.Record("contiguous", y, dy => Gradients.Accumulate(x, CopyAs(dy, x.Shape.ToArray())));
        return y;
    }

    /// <summary>A new contiguous tensor with x's values (x itself is never aliased).</summary>
    public static Tensor Copy(Tensor x)
    {
        var c = Contiguous(x);
        if (!ReferenceEquals(c, x)) return c;
        var y = Tensor.EmptyLike(x);
        x.Backend.Copy(y.Storage, x.Storage);
        if (Tape.Needs(x))
            Tape.Record("copy", y, dy => Gradients.Accumulate(x, CopyAs(dy, x.Shape.ToArray())));
        return y;
    }

    /// <summary>A fresh tensor of the given shape holding g's elements (g contiguous): how a gradient changes shape.</summary>
    static Tensor CopyAs(Tensor g, int[] shape)
    {
        var t = Tensor.Empty(g.Backend, g.DType, shape);
        g.Backend.Copy(t.Storage, g.Storage);
        return t;
    }

    static int[] ResolveShape(Tensor x, int[] shape)
    {
        shape = (int[])shape.Clone();
        int infer = Array.IndexOf(shape, -1);
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
            if (i != infer) known *= shape[i];
        if (infer >= 0 && known > 0 && x.Length % known == 0) shape[infer] = (int)(x.Length / known);
        if (shape.Any(d => d < 0) || Tensor.ShapeLength(shape) != x.Length)
            throw new ArgumentException($"reshape: {x} has {x.Length} elements, which shape {Tensor.Format(shape)} cannot hold");
        return shape;
    }
}
