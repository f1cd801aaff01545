// CUDA-tier AdamW: one thread per parameter of the flat buffer, PyTorch's order of operations (see AdamWReference).
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernels.Constants>? _adamw;

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        const string name = "adamw";
        s.Validate(param, grad, m, v, n);
        _adamw ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernels.Constants>(AdamWKernels.Step);
        _adamw(Count(name, n), F(name, param), F(name, grad), F(name, m), F(name, v), AdamWKernels.Constants.From(s));
    }
}

public static class AdamWKernels
{
    /// <summary>Per-step constants computed once on the host: lr·wd, the bias corrections folded into step size and √bc2.</summary>
    public readonly record struct Constants(float Beta1, float Beta2, float Eps, float DecayFactor, float StepSize,
        float SqrtBiasCorrection2, float GradScale)
    {
        public static Constants From(in AdamWStep s)
        {
            double bc1 = 1 - Math.Pow(s.Beta1, s.Step), bc2 = 1 - Math.Pow(s.Beta2, s.Step);
            return new(s.Beta1, s.Beta2, s.Eps, (float)(1 - (double)s.Lr * s.WeightDecay), (float)(s.Lr / bc1),
                (float)Math.Sqrt(bc2), s.GradScale);
        }
    }

    [GpuKernel("adamw_f32")]
    public static void Step(Index1D i, ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, // (n) each
        Constants c)
    {
        float g = grad[i] * c.GradScale;
        float mi = c.Beta1 * m[i] + (1 - c.Beta1) * g;
        float vi = c.Beta2 * v[i] + (1 - c.Beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = param[i] * c.DecayFactor;
        param[i] = p - c.StepSize * mi / (XMath.Sqrt(vi) / c.SqrtBiasCorrection2 + c.Eps);
    }
}
