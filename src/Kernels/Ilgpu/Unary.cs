// CUDA-tier activations (SiLU, GELU erf and tanh forms, QuickGELU) and their backward: one thread per element.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>? _unary;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>? _unaryBackward;

    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        UnaryChecks.Validate("unary", op, n, ("y", y), ("x", x));
        _unary ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Forward);
        _unary(Count("unary", n), F("unary", y), F("unary", x), UnaryKernels.Args.From(op));
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n)
    {
        const string name = "unary backward";
        UnaryChecks.Validate(name, op, n, ("dx", dx), ("dy", dy), ("x", x));
        _unaryBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Backward);
        _unaryBackward(Count(name, n), F(name, dx), F(name, dy), F(name, x), UnaryKernels.Args.From(op));
    }
}

/// <summary>
/// y = f(x) and dx = dy·f'(x) for UnaryOp f (see UnaryReference). The op is a launch-uniform argument, so the switch never
/// diverges inside a warp; each thread reads its x (and dy) once, coalesced, and writes one float. On the CPU emulator
/// XMath.Exp/Tanh are .NET's precise functions, so the erf-based Φ below is within about 4e-7 relative of double (the
/// fits are 1e-9; f32 rounding sets the bound). On PTX, Exp becomes ex2.approx.f32 (about 2 ulp), so GPU results are
/// within about 1e-6 relative; no op calls tanh (GELU-tanh is rewritten as x·σ(2u)). Element counts below 2^31 per launch.
/// </summary>
public static class UnaryKernels
{
    const float QuickK = 1.702f;
    const float TanhK2 = 1.5957691216f;            // 2√(2/π)
    const float TanhK2C = TanhK2 * 0.044715f;

    public readonly record struct Args(int Op)
    {
        public static Args From(UnaryOp op) => new((int)op);
    }

    [GpuKernel("unary_f32")]
    public static void Forward(Index1D i, ArrayView<float> y, ArrayView<float> x, Args p) =>   // y, x (n)
        y[i] = Activation(p.Op, x[i]);

    [GpuKernel("unary_backward_f32")]
    public static void Backward(Index1D i, ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> x, Args p) =>  // (n) each
        dx[i] = dy[i] * Derivative(p.Op, x[i]);

    /// <summary>σ(x) = 1/(1 + e^(−x)); e^(−x) = +∞ below −88 gives exactly 0, never NaN.</summary>
    static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));

    /// <summary>x·σ(x), and its derivative σ·(1 + x(1 − σ)); group norm fuses them too.</summary>
    internal static float Silu(float x) => x * Sigmoid(x);

    internal static float SiluDerivative(float x)
    {
        float s = Sigmoid(x);
        return s * (1f + x * (1f - s));
    }

    static float Activation(int op, float x)
    {
        if (op == (int)UnaryOp.Silu) return Silu(x);
        if (op == (int)UnaryOp.Gelu) return x * NormalCdf(x, out _);
        if (op == (int)UnaryOp.GeluTanh)                                        // ½x(1 + tanh u) = x·σ(2u)
        {
            float xc = XMath.Clamp(x, -20f, 20f);                               // σ(2u) is exactly 0 or 1 beyond; no x³ overflow
            return x * Sigmoid(xc * (TanhK2 + TanhK2C * xc * xc));
        }
        return x * Sigmoid(QuickK * x);                                         // QuickGelu: x·σ(1.702x)
    }

    static float Derivative(int op, float x)
    {
        if (op == (int)UnaryOp.Silu) return SiluDerivative(x);
        if (op == (int)UnaryOp.Gelu)                                            // Φ(x) + x·φ(x)
        {
            float cdf = NormalCdf(x, out float gauss);
            return cdf + x * 0.39894228f * gauss;
        }
        if (op == (int)UnaryOp.GeluTanh)                                        // σ + x·σ(1 − σ)·2u'
        {
            float xc = XMath.Clamp(x, -20f, 20f), x2 = xc * xc;
            float s = Sigmoid(xc * (TanhK2 + TanhK2C * x2));
            return s + x * s * (1f - s) * (TanhK2 + 3f * TanhK2C * x2);
        }
        float q = Sigmoid(QuickK * x);                                          // QuickGelu: σ·(1 + 1.702x(1 − σ))
        return q * (1f + QuickK * x * (1f - q));
    }

    /// <summary>Φ(x) = ½(1 + erf(x/√2)) in f32, and gauss = e^(−x²/2). With z = x/√2: for |z| &lt; ½, erf(z) = z·S(2z² − 1),
    /// S a degree-6 Chebyshev fit of erf(z)/z on z² ∈ [0, ¼] (error 1.4e-9); otherwise erfc(|z|) = t·R(t)·e^(−z²) with
    /// t = 2/(2 + |z|), R a degree-10 Chebyshev fit on z ∈ [½, 20] (error 1.1e-9), and Φ = ½erfc(|z|) for x &lt; 0, which
    /// keeps relative accuracy in the left tail. (The same fits as the Cpu tier's VectorMath.NormalCdf.) x² is split
    /// so e^(−x²/2) does not lose x²·2⁻²⁴ relative to the rounding of x² (PTX has no FMA intrinsic through ILGPU). On the
    /// GPU, ex2.approx's own scaling by log₂e still costs about (x²/2)·2⁻²³ relative in the far tail.</summary>
    internal static float NormalCdf(float x, out float gauss)
    {
        x = XMath.Clamp(x, -20f, 20f);                                          // Φ is exactly 0 or 1 in f32 beyond
        float x2 = x * x;
        // x = hi + lo with hi keeping 12 mantissa bits, so hi² is exact and only the small lo·(hi + x) term rounds.
        float hi = Interop.IntAsFloat(Interop.FloatAsInt(x) & 0xFFFFF000u), lo = x - hi;
        gauss = XMath.Exp(-0.5f * hi * hi) * XMath.Exp(-0.5f * lo * (hi + x));

        float az = XMath.Abs(x) * 0.70710678f;
        if (az < 0.5f)
        {
            float u = x2 - 1f;                                                  // 2z² − 1 ∈ [−1, −½)
            float s = 1.2316401598155835e-06f;
            s = s * u + -1.7669080809206152e-05f;
            s = s * u + 0.0002175119897763267f;
            s = s * u + -0.002285419528894783f;
            s = s * u + 0.019852497722773386f;
            s = s * u + -0.14053609728153635f;
            s = s * u + 0.9654687386375514f;
            return x * s * 0.35355339f + 0.5f;           // ½ + ½·(x/√2)·S
        }
        float halfT = 1f / (2f + az);                                           // t/2
        float v = halfT * 5.641025641025641f + -1.2564102564102564f;   // t ∈ [1/11, 4/5] → [−1, 1]
        float q = 1.7368071473811142e-06f;
        q = q * v + -4.176160337152624e-06f;
        q = q * v + -1.654545443209088e-05f;
        q = q * v + 6.151958570121963e-05f;
        q = q * v + 0.00014181921176303902f;
        q = q * v + -0.0007388649283994119f;
        q = q * v + -0.0022081756117691854f;
        q = q * v + 0.008018864449088253f;
        q = q * v + 0.06689883972141521f;
        q = q * v + 0.2225102038725469f;
        q = q * v + 0.47494770863813723f;
        float halfErfc = halfT * q * gauss;
        return x < 0f ? halfErfc : 1f - halfErfc;
    }
}
