// The AdamW optimizer step (decoupled weight decay, bias correction), in PyTorch's order of operations.
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

public sealed partial class ReferenceBackend
{
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
