// CUDA-tier AdamW: one thread per parameter of the flat buffer, with the constants every tier shares (AdamWStep.Constants).
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWConstants>? _adamw;

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        const string name = "adamw";
        s.Validate(param, grad, m, v, n);
        _adamw ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWConstants>(AdamWKernels.Step);
        _adamw(Count(name, n), F(name, param), F(name, grad), F(name, m), F(name, v), s.Constants());
    }
}

public static class AdamWKernels
{
    [GpuKernel("adamw_f32")]
    public static void Step(Index1D i, ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, // (n) each
        AdamWConstants c)
    {
        float g = grad[i] * c.GradScale;
        float mi = c.Beta1 * m[i] + c.OneMinusBeta1 * g;
        float vi = c.Beta2 * v[i] + c.OneMinusBeta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = param[i] * c.Decay;
        param[i] = p - c.StepSize * mi / (XMath.Sqrt(vi) / c.SqrtBc2 + c.Eps);
    }
}
