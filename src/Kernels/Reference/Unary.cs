// Pointwise activations (SiLU, GELU erf and tanh forms, QuickGELU) and their derivatives, plus erf/erfc in double.
namespace DreamBooth.Kernels.Reference;

public static class UnaryReference
{
    const double Sqrt2 = 1.4142135623730951;
    const double InvSqrtPi = 0.5641895835477563;   // 1/√π
    const double InvSqrt2Pi = 0.3989422804014327;  // 1/√(2π)
    const double TanhK = 0.7978845608028654;       // √(2/π)
    const double TanhC = 0.044715;
    const double QuickK = 1.702;

    /// <summary>erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, to about 1e-16 relative.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax >= 2) return Math.CopySign(1 - ErfcTail(ax), x);
        // erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1)): every term positive, so no cancellation.
        double term = x, sum = x;
        for (int n = 1; Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
        {
            term *= 2 * x * x / (2 * n + 1);
            sum += term;
        }
        return 2 * InvSqrtPi * Math.Exp(-x * x) * sum;
    }

    /// <summary>erfc(x) = 1 − erf(x), keeping full relative accuracy in the tail where erf(x) rounds to 1.</summary>
    public static double Erfc(double x) => x < 2 ? 1 - Erf(x) : ErfcTail(x);

    /// <summary>erfc(x) for x ≥ 2 from its continued fraction e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
    /// evaluated bottom-up; 60 levels reach double precision for x ≥ 2.</summary>
    static double ErfcTail(double x)
    {
        double f = x;
        for (int k = 60; k >= 1; k--) f = x + k / 2.0 / f;
        return Math.Exp(-x * x) * InvSqrtPi / f;
    }

    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>Φ(x), the standard normal CDF: ½·erfc(−x/√2).</summary>
    public static double NormalCdf(double x) => 0.5 * Erfc(-x / Sqrt2);

    /// <summary>The exact GELU, x·Φ(x), and its derivative Φ(x) + x·φ(x).</summary>
    public static double Gelu(double x) => x * NormalCdf(x);
    public static double GeluDerivative(double x) => NormalCdf(x) + x * InvSqrt2Pi * Math.Exp(-0.5 * x * x);

    public static double Activation(UnaryOp op, double x) => op switch
    {
        UnaryOp.Silu => x * Sigmoid(x),                                                     // x·σ(x)
        UnaryOp.Gelu => Gelu(x),                                                            // x·Φ(x)
        UnaryOp.GeluTanh => 0.5 * x * (1 + Math.Tanh(TanhK * (x + TanhC * x * x * x))),     // ½x(1 + tanh u)
        UnaryOp.QuickGelu => x * Sigmoid(QuickK * x),                                       // x·σ(1.702x)
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static double Derivative(UnaryOp op, double x)
    {
        switch (op)
        {
            case UnaryOp.Silu:
            {
                double s = Sigmoid(x);                  // σ + x·σ(1−σ)
                return s + x * s * (1 - s);
            }
            case UnaryOp.Gelu:
                return GeluDerivative(x);
            case UnaryOp.GeluTanh:
            {
                double t = Math.Tanh(TanhK * (x + TanhC * x * x * x));   // ½(1+t) + ½x(1−t²)·u'(x)
                return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * TanhK * (1 + 3 * TanhC * x * x);
            }
            case UnaryOp.QuickGelu:
            {
                double s = Sigmoid(QuickK * x);         // σ + 1.702·x·σ(1−σ)
                return s + QuickK * x * s * (1 - s);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    public static void Forward(UnaryOp op, Span<double> y, ReadOnlySpan<double> x) // y, x (n)
    {
        for (int i = 0; i < x.Length; i++) y[i] = Activation(op, x[i]);
    }

    public static void Backward(UnaryOp op, Span<double> dx, ReadOnlySpan<double> dy, ReadOnlySpan<double> x) // (n) each
    {
        for (int i = 0; i < x.Length; i++) dx[i] = dy[i] * Derivative(op, x[i]);   // dx = dy·f'(x)
    }
}

public sealed partial class ReferenceBackend
{
    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        UnaryChecks.Validate("unary", op, n, ("y", y), ("x", x));
        var result = new double[n];
        UnaryReference.Forward(op, result, D(x));
        Store(y, result);
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n)
    {
        UnaryChecks.Validate("unary backward", op, n, ("dx", dx), ("dy", dy), ("x", x));
        var result = new double[n];
        UnaryReference.Backward(op, result, D(dy), D(x));
        Store(dx, result);
    }
}
