// Conversion between the floating-point element types (f32, f16, bf16); the gradient is converted back.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>x converted to <paramref name="dtype"/>, rounding to nearest even; x itself when it has that dtype already.
    /// Only f32, f16 and bf16 convert (the backend's check, CastChecks, says so).</summary>
    public static Tensor Cast(Tensor x, DType dtype)   // (...)
    {
        if (x.DType == dtype) return x;
        x = Contiguous(x);
        var y = Tensor.Empty(x.Backend, dtype, x.Shape.ToArray());
        x.Backend.Cast(y.Storage, x.Storage);
        if (Tape.Needs(x))
            Tape.Record("cast", y, dy =>
            {   // dx = dy, converted back to x's dtype
                var dx = Tensor.EmptyLike(x);
                x.Backend.Cast(dx.Storage, dy.Storage);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }
}
