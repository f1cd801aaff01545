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

    public static void Validate(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        const string op = "adamw";
        Check.Positive(op, ("n", n), ("step", s.Step));
        if (!(s.Beta1 >= 0 && s.Beta1 < 1 && s.Beta2 >= 0 && s.Beta2 < 1))
            throw new ArgumentException($"{op}: betas ({s.Beta1}, {s.Beta2}) must lie in [0, 1)");
        if (!(s.Lr >= 0) || !(s.Eps > 0) || !(s.WeightDecay >= 0) || !float.IsFinite(s.GradScale))
            throw new ArgumentException($"{op}: need lr ≥ 0, eps > 0, weight decay ≥ 0 and a finite grad scale, got {s}");
        string shape = $"(n={n})";
        Check.Exactly(op, "param", param, DType.F32, n, shape);
        Check.Exactly(op, "grad", grad, DType.F32, n, shape);
        Check.Exactly(op, "m", m, DType.F32, n, shape);
        Check.Exactly(op, "v", v, DType.F32, n, shape);
    }
}

public sealed partial class ReferenceBackend
{
    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        AdamWReference.Validate(param, grad, m, v, s, n);
        double[] p = D(param), mm = D(m), vv = D(v);
        AdamWReference.Step(p, D(grad), mm, vv, s, checked((int)n));
        Store(param, p);
        Store(m, mm);
        Store(v, vv);
    }
}
