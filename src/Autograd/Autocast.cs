// Autocast: matrix products computed on half-precision (f16/bf16) operands while weights and gradients stay f32.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// <code>
/// using (Autocast.Enable(DType.F16))
///     loss = F.MseLoss(model.Forward(x), target);     // F.Linear and F.MatMul read half-rounded operands
/// loss.Backward(scaler.Scale);                         // their backward rounds the incoming gradient too
/// </code>
/// Inside the block, the ops that would run on half-precision tensor cores under torch.autocast (F.Linear, F.MatMul)
/// hand their GEMM operands through <see cref="Round"/>: activations and the f32 master weights are rounded to the
/// compute dtype, and so is the gradient dy arriving in their backward. The products themselves accumulate in f32 and
/// produce f32, as a half-input / f32-accumulate GEMM does. So the numbers have the range and precision of
/// half-precision compute (f16 overflows above 65504 and flushes tiny gradients, hence loss scaling; bf16 keeps 8
/// mantissa bits), while master weights, their gradients and the optimizer stay f32.
/// The rounded operands are half tensors handed straight to the half-input GEMM, so the activations a Linear saves for
/// its backward take half the memory of f32 ones. Each op captures the dtype at its forward, so its backward rounds the
/// same way wherever backward runs.
/// </summary>
public static class Autocast
{
    [ThreadStatic] static DType? _computeType;

    /// <summary>The dtype matrix products compute in on this thread: F16 or BF16, or null when autocast is off.</summary>
    public static DType? ComputeType => _computeType;

    /// <summary>Computes matrix products in <paramref name="dtype"/> (F16 or BF16; F32 turns autocast off) until
    /// Dispose, which restores the previous mode. Blocks nest.</summary>
    public static IDisposable Enable(DType dtype)
    {
        if (dtype is not (DType.F16 or DType.BF16 or DType.F32))
            throw new ArgumentException($"autocast: compute dtype must be f16, bf16 or f32, not {dtype.Name()}");
        var restore = new Restore(_computeType);
        _computeType = dtype == DType.F32 ? null : dtype;
        return restore;
    }

    sealed class Restore(DType? previous) : IDisposable
    {
        public void Dispose() => _computeType = previous;
    }

    /// <summary>x's values rounded to <paramref name="half"/> (round to nearest even), as a new contiguous tensor of
    /// that dtype off the tape (gradients pass through the rounding unchanged, as through torch's cast); x itself when
    /// <paramref name="half"/> is null. x (any shape), f32 and contiguous.</summary>
    public static Tensor Round(Tensor x, DType? half)
    {
        if (half is not { } dtype) return x;
        if (x.DType != DType.F32 || !x.IsContiguous)
            throw new ArgumentException($"autocast: can only round contiguous f32 tensors, not {x}");
        var y = Tensor.Empty(x.Backend, dtype, x.Shape.ToArray());
        x.Backend.Cast(y.Storage, x.Storage);
        return y;
    }
}
