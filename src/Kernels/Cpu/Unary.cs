// Activations on the cpu tier: vectorised exp, sigmoid and the erf-based normal CDF, on Vector512 or Vector256.
using System.Runtime.CompilerServices;

namespace DreamBooth.Kernels.Cpu;

/// <summary>f32 transcendental functions on either vector width (IVec). Measured against double over dense grids (2M
/// and 1M points): Exp ≤ 7.6e-8 relative on [−87, 88]; NormalCdf ≤ 4.0e-7 relative on [−13, 13] (left tail included),
/// and the erf it implies, 2Φ(z√2) − 1, ≤ 3.6e-7 relative (f32 arithmetic, not the fits, sets these bounds).</summary>
static class VectorMath
{
    /// <summary>e^x = 2ⁿ·e^r with n = round(x/ln2), r = x − n·ln2 (ln2 split in two for an exact product), e^r by its
    /// Taylor series to r⁷ (|r| ≤ ln2/2, truncation 5e-9). Overflows to +∞ above 88.7 and flushes to 0 below −104
    /// where the hardware scales by 2ⁿ; elsewhere x is clamped to [−87.3, 88.3], which keeps 2ⁿ a normal float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TV>(TV x) where TV : struct, IVec<TV>
    {
        x = TV.ScalesAnyExponent ? TV.Clamp(x, -104f, 89f) : TV.Clamp(x, -87.3f, 88.3f);
        var n = TV.Round(x * TV.Create(1.44269504f));
        var r = TV.Fma(n, TV.Create(-0.693145752f), x);
        r = TV.Fma(n, TV.Create(-1.42860677e-6f), r);
        var p = TV.Create(1f / 5040);
        p = TV.Fma(p, r, TV.Create(1f / 720));
        p = TV.Fma(p, r, TV.Create(1f / 120));
        p = TV.Fma(p, r, TV.Create(1f / 24));
        p = TV.Fma(p, r, TV.Create(1f / 6));
        p = TV.Fma(p, r, TV.Create(0.5f));
        p = TV.Fma(p, r, TV.Create(1f));
        p = TV.Fma(p, r, TV.Create(1f));
        return TV.ScaleByPow2(p, n);
    }

    /// <summary>σ(x) = 1/(1 + e^(−x)); e^(−x) = +∞ for x &lt; −89 gives exactly 0, never NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Sigmoid<TV>(TV x) where TV : struct, IVec<TV> => TV.Create(1f) / (TV.Create(1f) + Exp(-x));

    /// <summary>Φ(x) = ½(1 + erf(z)), z = x/√2, and gauss = e^(−x²/2) for the caller's derivative.
    /// |z| &lt; ½: erf(z) = z·S(2z² − 1), S a degree-6 Chebyshev fit of erf(z)/z in z² on [0, 1] (error 1.4e-9).
    /// |z| ≥ ½: erfc(|z|) = t·R(t)·e^(−z²), t = 2/(2 + |z|), R a degree-10 Chebyshev fit of erfc·e^(z²)/t on
    /// z ∈ [½, 20] (error 1.1e-9); then Φ = ½erfc(|z|) for x &lt; 0, keeping relative accuracy in the left tail (the
    /// switch at ½ rather than 1 avoids the cancellation in ½ + ½erf(z) as Φ falls towards 0.16).
    /// x² is carried as its f32 value plus its rounding error (one FMA), which would otherwise cost x²·2⁻²⁴ relative
    /// accuracy in e^(−x²/2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV NormalCdf<TV>(TV x, out TV gauss) where TV : struct, IVec<TV>
    {
        x = TV.Clamp(x, -20f, 20f);                                                     // Φ is exactly 0 or 1 in f32 beyond
        var x2 = x * x;
        var x2Error = TV.Fma(x, x, -x2);
        var e = Exp(x2 * TV.Create(-0.5f));
        gauss = TV.Fma(e * x2Error, TV.Create(-0.5f), e);                               // e^(−x²/2)·(1 − error/2)

        var u = x2 - TV.Create(1f);                                                     // 2z² − 1
        var s = TV.Create(1.2316401598155835e-06f);
        s = TV.Fma(s, u, TV.Create(-1.7669080809206152e-05f));
        s = TV.Fma(s, u, TV.Create(0.0002175119897763267f));
        s = TV.Fma(s, u, TV.Create(-0.002285419528894783f));
        s = TV.Fma(s, u, TV.Create(0.019852497722773386f));
        s = TV.Fma(s, u, TV.Create(-0.14053609728153635f));
        s = TV.Fma(s, u, TV.Create(0.9654687386375514f));
        var small = TV.Fma(x * s, TV.Create(0.35355339f), TV.Create(0.5f));            // ½ + ½·(x/√2)·S

        var az = TV.Abs(x) * TV.Create(0.70710678f);
        var halfT = TV.Create(1f) / (TV.Create(2f) + az);                               // t/2
        var v = TV.Fma(halfT, TV.Create(5.641025641025641f), TV.Create(-1.2564102564102564f));   // t ∈ [1/11, 4/5] → [−1, 1]
        var q = TV.Create(1.7368071473811142e-06f);
        q = TV.Fma(q, v, TV.Create(-4.176160337152624e-06f));
        q = TV.Fma(q, v, TV.Create(-1.654545443209088e-05f));
        q = TV.Fma(q, v, TV.Create(6.151958570121963e-05f));
        q = TV.Fma(q, v, TV.Create(0.00014181921176303902f));
        q = TV.Fma(q, v, TV.Create(-0.0007388649283994119f));
        q = TV.Fma(q, v, TV.Create(-0.0022081756117691854f));
        q = TV.Fma(q, v, TV.Create(0.008018864449088253f));
        q = TV.Fma(q, v, TV.Create(0.06689883972141521f));
        q = TV.Fma(q, v, TV.Create(0.2225102038725469f));
        q = TV.Fma(q, v, TV.Create(0.47494770863813723f));
        var halfErfc = halfT * q * gauss;
        var large = TV.SelectLess(x, TV.Zero, halfErfc, TV.Create(1f) - halfErfc);

        return TV.SelectLess(az, TV.Create(0.5f), small, large);
    }
}

/// <summary>An activation and its derivative on a vector; the generic loops specialise on it and on the width.</summary>
interface IActivation
{
    static abstract TV Forward<TV>(TV x) where TV : struct, IVec<TV>;
    static abstract TV Derivative<TV>(TV x) where TV : struct, IVec<TV>;
}

struct SiluActivation : IActivation
{
    public static TV Forward<TV>(TV x) where TV : struct, IVec<TV> => x * VectorMath.Sigmoid(x);

    public static TV Derivative<TV>(TV x) where TV : struct, IVec<TV>   // σ·(1 + x(1 − σ))
    {
        var s = VectorMath.Sigmoid(x);
        return s * TV.Fma(x, TV.Create(1f) - s, TV.Create(1f));
    }
}

struct QuickGeluActivation : IActivation
{
    public static TV Forward<TV>(TV x) where TV : struct, IVec<TV> => x * VectorMath.Sigmoid(x * TV.Create(1.702f));

    public static TV Derivative<TV>(TV x) where TV : struct, IVec<TV>   // σ·(1 + 1.702x(1 − σ)), σ = σ(1.702x)
    {
        var kx = x * TV.Create(1.702f);
        var s = VectorMath.Sigmoid(kx);
        return s * TV.Fma(kx, TV.Create(1f) - s, TV.Create(1f));
    }
}

/// <summary>½x(1 + tanh u) = x·σ(2u), u = √(2/π)(x + 0.044715x³): no tanh needed, and exact 0/1 limits. The cubic
/// sees x clamped to ±20, where σ(2u) is already exactly 0 or 1, so x³ cannot overflow into inf·0.</summary>
struct GeluTanhActivation : IActivation
{
    const float K2 = 1.5957691216f;               // 2√(2/π)
    const float K2C = K2 * 0.044715f;

    public static TV Forward<TV>(TV x) where TV : struct, IVec<TV>
    {
        var xc = TV.Clamp(x, -20f, 20f);
        return x * VectorMath.Sigmoid(xc * TV.Fma(xc * xc, TV.Create(K2C), TV.Create(K2)));
    }

    public static TV Derivative<TV>(TV x) where TV : struct, IVec<TV>   // σ + x·σ(1 − σ)·2u', 2u' = 2√(2/π)(1 + 3·0.044715x²)
    {
        var xc = TV.Clamp(x, -20f, 20f);
        var x2 = xc * xc;
        var s = VectorMath.Sigmoid(xc * TV.Fma(x2, TV.Create(K2C), TV.Create(K2)));
        var du = TV.Fma(x2, TV.Create(3 * K2C), TV.Create(K2));
        return s * TV.Fma(xc * du, TV.Create(1f) - s, TV.Create(1f));
    }
}

/// <summary>Exact GELU x·Φ(x); derivative Φ(x) + x·e^(−x²/2)/√(2π).</summary>
struct GeluActivation : IActivation
{
    public static TV Forward<TV>(TV x) where TV : struct, IVec<TV> => x * VectorMath.NormalCdf(x, out _);

    public static TV Derivative<TV>(TV x) where TV : struct, IVec<TV>
    {
        var phi = VectorMath.NormalCdf(x, out var gauss);
        return TV.Fma(x * gauss, TV.Create(0.39894228f), phi);
    }
}

public sealed unsafe partial class CpuBackend
{
    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        UnaryChecks.Validate("unary", op, n, ("y", y), ("x", x));
        float* py = F(y), px = F(x);
        bool wide = UseVector512;
        Chunks.For(n, (start, end) =>
        {
            if (wide) Forward<V512>(op, py + start, px + start, end - start);
            else Forward<V256>(op, py + start, px + start, end - start);
        });
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n)
    {
        UnaryChecks.Validate("unary backward", op, n, ("dx", dx), ("dy", dy), ("x", x));
        float* pdx = F(dx), pdy = F(dy), px = F(x);
        bool wide = UseVector512;
        Chunks.For(n, (start, end) =>
        {
            if (wide) Backward<V512>(op, pdx + start, pdy + start, px + start, end - start);
            else Backward<V256>(op, pdx + start, pdy + start, px + start, end - start);
        });
    }

    static void Forward<TV>(UnaryOp op, float* y, float* x, long n) where TV : struct, IVec<TV>
    {
        switch (op)
        {
            case UnaryOp.Silu: Forward<SiluActivation, TV>(y, x, n); break;
            case UnaryOp.Gelu: Forward<GeluActivation, TV>(y, x, n); break;
            case UnaryOp.GeluTanh: Forward<GeluTanhActivation, TV>(y, x, n); break;
            case UnaryOp.QuickGelu: Forward<QuickGeluActivation, TV>(y, x, n); break;
        }
    }

    static void Backward<TV>(UnaryOp op, float* dx, float* dy, float* x, long n) where TV : struct, IVec<TV>
    {
        switch (op)
        {
            case UnaryOp.Silu: Backward<SiluActivation, TV>(dx, dy, x, n); break;
            case UnaryOp.Gelu: Backward<GeluActivation, TV>(dx, dy, x, n); break;
            case UnaryOp.GeluTanh: Backward<GeluTanhActivation, TV>(dx, dy, x, n); break;
            case UnaryOp.QuickGelu: Backward<QuickGeluActivation, TV>(dx, dy, x, n); break;
        }
    }

    // y = act(x)   // (n)
    static void Forward<TAct, TV>(float* y, float* x, long n) where TAct : struct, IActivation where TV : struct, IVec<TV>
    {
        long i = 0;
        for (; i + TV.Count <= n; i += TV.Count) TV.Store(TAct.Forward(TV.Load(x + i)), y + i);
        if (i < n) TV.StoreTail(TAct.Forward(TV.LoadTail(x + i, n - i)), y + i, n - i);
    }

    // dx = dy·act'(x)   // (n)
    static void Backward<TAct, TV>(float* dx, float* dy, float* x, long n) where TAct : struct, IActivation where TV : struct, IVec<TV>
    {
        long i = 0;
        for (; i + TV.Count <= n; i += TV.Count) TV.Store(TV.Load(dy + i) * TAct.Derivative(TV.Load(x + i)), dx + i);
        if (i < n) TV.StoreTail(TV.LoadTail(dy + i, n - i) * TAct.Derivative(TV.LoadTail(x + i, n - i)), dx + i, n - i);
    }
}
