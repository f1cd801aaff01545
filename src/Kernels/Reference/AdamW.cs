// The AdamW optimizer step (decoupled weight decay, bias correction), in PyTorch's order of operations, and its 8-bit form.
namespace DreamBooth.Kernels.Reference;

/// <summary>
/// torch.optim.AdamW (foreach=False, fused=False, amsgrad=False), step t counted from 1:
///   g = grad · gradScale
///   p ← p · (1 − lr·wd)                              decoupled weight decay, applied first
///   m ← β1·m + (1 − β1)·g                            (PyTorch: m.lerp_(g, 1 − β1), the same value)
///   v ← β2·v + (1 − β2)·g²
///   denom = √v / √(1 − β2^t) + eps                   eps added after the bias correction of v
///   p ← p − lr / (1 − β1^t) · m / denom
/// The hyper-parameters are the AdamWStep floats widened to double (β1 = 0.9f, not the double 0.9).
/// </summary>
public static class AdamWReference
{
    public static void Step(Span<double> param,  // (n), updated
        ReadOnlySpan<double> grad,                // (n)
        Span<double> m,                           // (n) first moment, updated
        Span<double> v,                           // (n) second moment, updated
        in AdamWStep s, int n)
    {
        double lr = s.Lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, wd = s.WeightDecay, scale = s.GradScale;
        double biasCorrection1 = 1 - Math.Pow(beta1, s.Step);
        double biasCorrection2 = 1 - Math.Pow(beta2, s.Step);
        double stepSize = lr / biasCorrection1;
        for (int i = 0; i < n; i++)
        {
            double g = grad[i] * scale;
            param[i] *= 1 - lr * wd;
            m[i] = beta1 * m[i] + (1 - beta1) * g;
            v[i] = beta2 * v[i] + (1 - beta2) * g * g;
            double denom = Math.Sqrt(v[i]) / Math.Sqrt(biasCorrection2) + eps;
            param[i] -= stepSize * m[i] / denom;
        }
    }
}

/// <summary>
/// 8-bit AdamW (bitsandbytes' AdamW8bit, block-wise): m and v are stored as DynamicMap codes times an absmax per block
/// of BlockSize parameters. Per block:
///   m = Signed[code_m]·absmax_m,  v = Unsigned[code_v]·absmax_v       dequantise
///   the AdamW step above with these m and v, in full precision        (the update uses the unrounded new moments)
///   absmax_m = max |m|,  absmax_v = max v   over the block            (0 for an all-zero block)
///   code_m = Quantize(m / absmax_m),  code_v = Quantize(v / absmax_v) nearest map entry (0 when absmax is 0)
/// </summary>
public static class AdamW8bitReference
{
    public static void Step(Span<double> param,  // (n), updated
        ReadOnlySpan<double> grad,                // (n)
        Span<byte> m, Span<double> mMax,          // (n) codes, (⌈n/BlockSize⌉) absmax; updated
        Span<byte> v, Span<double> vMax,          // (n) codes, (⌈n/BlockSize⌉) absmax; updated
        in AdamWStep s, int n)
    {
        var mValues = new double[DynamicMap.BlockSize];
        var vValues = new double[DynamicMap.BlockSize];
        for (int block = 0; block * DynamicMap.BlockSize < n; block++)
        {
            int start = block * DynamicMap.BlockSize, count = Math.Min(DynamicMap.BlockSize, n - start);
            for (int j = 0; j < count; j++)
            {
                mValues[j] = DynamicMap.Signed[m[start + j]] * mMax[block];
                vValues[j] = DynamicMap.Unsigned[v[start + j]] * vMax[block];
            }
            AdamWReference.Step(param.Slice(start, count), grad.Slice(start, count), mValues.AsSpan(0, count), vValues.AsSpan(0, count), s, count);
            double mAbs = 0, vAbs = 0;
            for (int j = 0; j < count; j++)
            {
                mAbs = Math.Max(mAbs, Math.Abs(mValues[j]));
                vAbs = Math.Max(vAbs, vValues[j]);
            }
            (mMax[block], vMax[block]) = (mAbs, vAbs);
            for (int j = 0; j < count; j++)
            {
                m[start + j] = DynamicMap.Quantize(DynamicMap.SignedMidpoints, mAbs > 0 ? mValues[j] / mAbs : 0);
                v[start + j] = DynamicMap.Quantize(DynamicMap.UnsignedMidpoints, vAbs > 0 ? vValues[j] / vAbs : 0);
            }
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void AdamW8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax,
        in AdamWStep s, long n)
    {
        s.Validate8bit(param, grad, m, mMax, v, vMax, n);
        double[] p = D(param), mAbs = D(mMax), vAbs = D(vMax);
        AdamW8bitReference.Step(p, D(grad), Host(m).AsSpan<byte>(), mAbs, Host(v).AsSpan<byte>(), vAbs, s, checked((int)n));
        Store(param, p);
        Store(mMax, mAbs);
        Store(vMax, vAbs);
    }

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        s.Validate(param, grad, m, v, n);
        double[] p = D(param), mm = D(m), vv = D(v);
        AdamWReference.Step(p, D(grad), mm, vv, s, checked((int)n));
        Store(param, p);
        Store(m, mm);
        Store(v, vv);
    }
}
