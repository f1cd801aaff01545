// Conversion between the floating-point element types (f32, f16, bf16); the gradient is converted back.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>x converted to <paramref name="dtype"/>, rounding to nearest even; x itself when it has that dtype already.</summary>
    public static Tensor Cast(Tensor x, DType dtype)   // (...)
    {
        if (!IsFloat(x.DType) || !IsFloat(dtype))
            throw new ArgumentException($"cast: {x} to {dtype.Name()}: only f32, f16 and bf16 convert");
        if (x.DType == dtype) return x;
        x = Contiguous(x);
        var y = Tensor.Zeros(x.Backend, dtype, x.Shape.ToArray());
        x.Backend.Cast(y.Storage, x.Storage);
        if (Tape.Needs(x))
            Tape.Record("cast", y, dy =>
            {   // dx = dy, converted back to x's dtype
                var dx = Tensor.ZerosLike(x);
                x.Backend.Cast(dx.Storage, dy.Storage);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    static bool IsFloat(DType t) => t is DType.F32 or DType.F16 or DType.BF16;
}
