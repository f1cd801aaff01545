// Nearest-neighbour 2x upsampling and zero padding of images, with their backward.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>Each pixel repeated into a 2×2 block (nn.Upsample(scale_factor=2, mode="nearest")).</summary>
    public static Tensor UpsampleNearest2x(Tensor x)   // (N, C, H, W) → (N, C, 2H, 2W)
    {
        if (x.Rank != 4) throw new ArgumentException($"upsample: x {x} must be (N, C, H, W)");
        x = Contiguous(x);
        int planes = x.Dim(0) * x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        var y = Tensor.Empty(x.Backend, x.Dim(0), x.Dim(1), 2 * h, 2 * w);
        x.Backend.UpsampleNearest2x(y.Storage, x.Storage, planes, h, w);
        if (Tape.Needs(x))
            Tape.Record("upsample nearest 2x", y, dy =>
            {   // dx[i, j] = Σ of dy over the 2×2 block that copied x[i, j]
                var dx = Tensor.EmptyLike(x);
                x.Backend.UpsampleNearest2xBackward(dx.Storage, dy.Storage, planes, h, w);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>Zeros added around each image: <paramref name="left"/>/<paramref name="right"/> columns and
    /// <paramref name="top"/>/<paramref name="bottom"/> rows (F.pad(x, (left, right, top, bottom))).</summary>
    public static Tensor Pad2d(Tensor x,   // (N, C, H, W) → (N, C, top + H + bottom, left + W + right)
        int left, int right, int top, int bottom)
    {
        if (x.Rank != 4 || left < 0 || right < 0 || top < 0 || bottom < 0)
            throw new ArgumentException($"pad2d: x {x} must be (N, C, H, W) and the padding ({left}, {right}, {top}, {bottom}) non-negative");
        x = Contiguous(x);
        Tensor y;
        using (Tape.NoGrad())
        {   // the zero blocks joined on: columns first (axis 3), then rows (axis 2)
            y = x;
            y = JoinZeros(y, x, 3, left, before: true);
            y = JoinZeros(y, x, 3, right, before: false);
            y = JoinZeros(y, x, 2, top, before: true);
            y = JoinZeros(y, x, 2, bottom, before: false);
            if (ReferenceEquals(y, x)) y = Copy(x);
        }
        if (Tape.Needs(x))
            Tape.Record("pad2d", y, dy =>
            {   // dx = dy[:, :, top : top + H, left : left + W]: the padding's gradient is dropped
                var dx = Tensor.EmptyLike(x);
                x.Backend.StridedCopy(dx.Storage, dy.Storage, x.Shape, Tensor.RowMajorStrides(dy.Shape),
                    (long)top * dy.Dim(3) + left);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>x with <paramref name="count"/> zeros joined before or after it along the axis; an intermediate x
    /// (not the op's input) is freed at once, so padding a large activation holds at most two copies.</summary>
    static Tensor JoinZeros(Tensor x, Tensor input, int axis, int count, bool before)
    {
        if (count == 0) return x;
        var shape = x.Shape.ToArray();
        shape[axis] = count;
        using var zeros = Tensor.Zeros(x.Backend, x.DType, shape);
        var y = before ? Concat(zeros, x, axis) : Concat(x, zeros, axis);
        if (!ReferenceEquals(x, input)) x.Dispose();
        return y;
    }
}
