// The global gradient norm of a parameter store (one reduction) and clip_grad_norm_'s scaling factor.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static class GradNorm
{
    /// <summary>Σ g² over every trainable gradient: one SumSquares launch over the flat buffer. Infinite or NaN when
    /// some gradient is, and also when the sum of finite squares overflows f32 (|g| beyond ~1e19), which a loss
    /// scaler rightly treats as an overflow too.</summary>
    public static float SumSquares(ParameterStore store)
    {
        var be = store.Backend;
        using var result = be.Allocate(DType.F32, 1);
        be.SumSquares(result, store.Grads, store.TrainableLength);
        Span<float> sum = stackalloc float[1];
        be.Download(sum, result);
        return sum[0];
    }

    /// <summary>Σ g² over the trainable gradients of every store: an optimizer's param groups measured together.</summary>
    public static float SumSquares(IReadOnlyList<ParameterStore> stores) => stores.Sum(SumSquares);

    /// <summary>The L2 norm √(Σ g²) of all trainable gradients of all the stores together.</summary>
    public static float Total(IReadOnlyList<ParameterStore> stores) => (float)Math.Sqrt(SumSquares(stores));

    /// <summary>clip_grad_norm_'s factor: min(1, maxNorm / (norm + 1e-6)).</summary>
    public static float ClipFactor(float norm, float maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "clip grad norm: max norm must be > 0");
        return (float)Math.Min(1.0, maxNorm / (norm + 1e-6));
    }
}
