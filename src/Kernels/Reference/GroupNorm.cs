// Group normalisation over (N, C, HW) with G groups, optionally followed by SiLU: the double oracle (forward, backward), its validation, and the reference entry points.
namespace DreamBooth.Kernels.Reference;

public static class GroupNormReference
{
    /// <summary>Statistics over the C/G channels × HW elements of each (n, g); rstd = 1/√(var + eps) with the biased
    /// variance (as PyTorch). z = (x − mean)·rstd·gamma[c] + beta[c]; y = z, or y = silu(z) = z·σ(z) when
    /// <paramref name="silu"/>.</summary>
    public static void Forward(Span<double> y, Span<double> mean, Span<double> rstd, // (N, C, HW) (N, G) (N, G)
        ReadOnlySpan<double> x, ReadOnlySpan<double> gamma, ReadOnlySpan<double> beta, // (N, C, HW) (C) (C)
        int n, int c, int hw, int groups, double eps, bool silu)
    {
        int perGroup = c / groups, count = perGroup * hw;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++)
            {
                int start = (b * c + g * perGroup) * hw;
                var xs = x.Slice(start, count);
                double mu = 0, var = 0;
                foreach (double v in xs) mu += v;
                mu /= count;
                foreach (double v in xs) var += (v - mu) * (v - mu);
                double r = 1 / Math.Sqrt(var / count + eps);
                mean[b * groups + g] = mu;
                rstd[b * groups + g] = r;
                for (int ci = 0; ci < perGroup; ci++)
                {
                    int ch = g * perGroup + ci;
                    for (int i = 0; i < hw; i++)
                    {
                        int at = start + ci * hw + i;
                        double z = (x[at] - mu) * r * gamma[ch] + beta[ch];
                        y[at] = silu ? UnaryReference.Activation(UnaryOp.Silu, z) : z;
                    }
                }
            }
    }

    /// <summary>With xhat = (x − mean)·rstd, dz = dy (or dy·silu'(z) when <paramref name="silu"/>, z = xhat·gamma + beta
    /// recomputed from the saved statistics) and dxhat = dz·gamma, over the M elements of a group:
    /// dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) (overwritten); dgamma += Σ dz·xhat, dbeta += Σ dz.</summary>
    public static void Backward(Span<double> dx, Span<double> dgamma, Span<double> dbeta, // (N, C, HW) (C) (C)
        ReadOnlySpan<double> dy, ReadOnlySpan<double> x, // (N, C, HW) (N, C, HW)
        ReadOnlySpan<double> mean, ReadOnlySpan<double> rstd, // (N, G) (N, G)
        ReadOnlySpan<double> gamma, ReadOnlySpan<double> beta, // (C) (C)
        int n, int c, int hw, int groups, bool silu)
    {
        int perGroup = c / groups, count = perGroup * hw;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++)
            {
                int start = (b * c + g * perGroup) * hw;
                double mu = mean[b * groups + g], r = rstd[b * groups + g];
                double sumD = 0, sumDX = 0; // Σ dxhat, Σ dxhat·xhat
                for (int ci = 0; ci < perGroup; ci++)
                {
                    int ch = g * perGroup + ci;
                    for (int i = 0; i < hw; i++)
                    {
                        int at = start + ci * hw + i;
                        double xhat = (x[at] - mu) * r, dz = GradPreActivation(dy[at], xhat * gamma[ch] + beta[ch], silu);
                        sumD += dz * gamma[ch];
                        sumDX += dz * gamma[ch] * xhat;
                        dgamma[ch] += dz * xhat;
                        dbeta[ch] += dz;
                    }
                }
                for (int ci = 0; ci < perGroup; ci++)
                {
                    int ch = g * perGroup + ci;
                    for (int i = 0; i < hw; i++)
                    {
                        int at = start + ci * hw + i;
                        double xhat = (x[at] - mu) * r, dz = GradPreActivation(dy[at], xhat * gamma[ch] + beta[ch], silu);
                        dx[at] = r * (dz * gamma[ch] - sumD / count - xhat * sumDX / count);
                    }
                }
            }
    }

    /// <summary>The gradient at the affine output z: dy itself, or dy·silu'(z) when SiLU follows.</summary>
    static double GradPreActivation(double dy, double z, bool silu) => silu ? dy * UnaryReference.Derivative(UnaryOp.Silu, z) : dy;
}

public sealed partial class ReferenceBackend
{
    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma,
        DeviceBuffer beta, int n, int c, int hw, int groups, float eps, bool silu)
    {
        GroupNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, eps);
        var yd = new double[y.Length];
        var md = new double[mean.Length];
        var rd = new double[rstd.Length];
        GroupNormReference.Forward(yd, md, rd, D(x), D(gamma), D(beta), n, c, hw, groups, eps, silu);
        Store(y, yd);
        Store(mean, md);
        Store(rstd, rd);
    }

    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu)
    {
        GroupNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups);
        var dxd = new double[dx.Length];
        double[] dg = D(dgamma), db = D(dbeta);
        GroupNormReference.Backward(dxd, dg, db, D(dy), D(x), D(mean), D(rstd), D(gamma), D(beta), n, c, hw, groups, silu);
        Store(dx, dxd);
        Store(dgamma, dg);
        Store(dbeta, db);
    }
}
