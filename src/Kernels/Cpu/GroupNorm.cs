// Group normalisation on the CPU: one-pass SIMD statistics per (n, g), fused affine (+ SiLU), fused backward; parallel over (N, G).
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma,
        DeviceBuffer beta, int n, int c, int hw, int groups, float eps, bool silu)
    {
        GroupNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, eps);
        float* yp = F(y), mp = F(mean), rp = F(rstd), xp = F(x), gp = F(gamma), bp = F(beta);
        int perGroup = c / groups, count = perGroup * hw;
        bool wide = UseVector512;
        void Body(int task)
        {
            int b = task / groups, g = task % groups;
            long start = ((long)b * c + g * perGroup) * hw;
            var (mu, rs) = NormStats.MeanRstd(xp + start, count, eps);
            mp[task] = mu;
            rp[task] = rs;
            for (int ci = 0; ci < perGroup; ci++)
            {
                int ch = g * perGroup + ci;
                float a = rs * gp[ch];
                if (silu && wide) NormStats.AffineSilu<V512>(yp + start + ci * hw, xp + start + ci * hw, mu, a, bp[ch], hw);
                else if (silu) NormStats.AffineSilu<V256>(yp + start + ci * hw, xp + start + ci * hw, mu, a, bp[ch], hw);
                else NormStats.Affine(yp + start + ci * hw, xp + start + ci * hw, mu, a, bp[ch], hw);
            }
        }
        NormStats.For(n * groups, (long)n * c * hw, Body);
    }

    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu)
    {
        GroupNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups);
        float* dxp = F(dx), dgp = F(dgamma), dbp = F(dbeta), dyp = F(dy), xp = F(x), mp = F(mean), rp = F(rstd), gp = F(gamma), bp = F(beta);
        int perGroup = c / groups, count = perGroup * hw;
        bool wide = UseVector512;
        // Per (n, c): Σ dz·xhat and Σ dz, reduced over n after the parallel loop so no two tasks write one dgamma[c].
        // dz, the gradient at the affine output, is dy; with SiLU it is dy·silu'(z), which the first pass writes into dx
        // (dx belongs to this task's group, and may be dy itself) for the second pass to read.
        double[] partial = ArrayPool<double>.Shared.Rent(2 * n * c);
        fixed (double* part = partial)
        {
            double* pp = part;
            void Body(int task)
            {
                int b = task / groups, g = task % groups;
                long start = ((long)b * c + g * perGroup) * hw;
                float mu = mp[task], rs = rp[task];
                double sumD = 0, sumDX = 0; // Σ dxhat, Σ dxhat·xhat with dxhat = dz·gamma
                float* dz = silu ? dxp : dyp;
                for (int ci = 0; ci < perGroup; ci++)
                {
                    int ch = g * perGroup + ci;
                    long at = start + ci * hw;
                    var (sdz, sdzx) = !silu ? NormStats.DotSums(dyp + at, xp + at, mu, hw)
                        : wide ? NormStats.SiluGradSums<V512>(dxp + at, dyp + at, xp + at, mu, rs * gp[ch], bp[ch], hw)
                        : NormStats.SiluGradSums<V256>(dxp + at, dyp + at, xp + at, mu, rs * gp[ch], bp[ch], hw);
                    pp[2 * (b * c + ch)] = rs * sdzx;
                    pp[2 * (b * c + ch) + 1] = sdz;
                    sumD += gp[ch] * sdz;
                    sumDX += gp[ch] * rs * sdzx;
                }
                // dx = rstd·(gamma·dz − Σdxhat/M − xhat·Σ(dxhat·xhat)/M) = dz·k1 + (x − mean)·k2 + k3
                float k2 = (float)(-rs * rs * sumDX / count), k3 = (float)(-rs * sumD / count);
                for (int ci = 0; ci < perGroup; ci++)
                {
                    long at = start + ci * hw;
                    NormStats.GradInput(dxp + at, dz + at, xp + at, rs * gp[g * perGroup + ci], mu, k2, k3, hw);
                }
            }
            NormStats.For(n * groups, 2L * n * c * hw, Body);
            for (int ch = 0; ch < c; ch++)
            {
                double sg = 0, sb = 0;
                for (int b = 0; b < n; b++)
                {
                    sg += pp[2 * (b * c + ch)];
                    sb += pp[2 * (b * c + ch) + 1];
                }
                dgp[ch] += (float)sg;
                dbp[ch] += (float)sb;
            }
        }
        ArrayPool<double>.Shared.Return(partial);
    }
}

/// <summary>Vector loops shared by group norm and layer norm.</summary>
static unsafe class NormStats
{
    /// <summary>Sums run in float inside chunks of this many elements (at most 32 terms per lane and accumulator),
    /// then in double across chunks, so rounding stays near float epsilon for any group size.</summary>
    const int Chunk = 1024;

    /// <summary>Runs body(0..count) on every core (Cores.For) when there is enough work (elements touched) to pay for it.</summary>
    public static void For(int count, long work, Action<int> body)
    {
        if (count == 1 || work < 1 << 15)
            for (int i = 0; i < count; i++) body(i);
        else
            Cores.For(0, count, body);
    }

    /// <summary>Mean and 1/√(var + eps) of n floats in one pass. Sums are of x − x[0]: the shift makes Σ(x − s)² − n·mean²
    /// free of the cancellation that ruins E[x²] − E[x]² when |mean| ≫ std; float lanes per chunk, double across chunks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static (float Mean, float Rstd) MeanRstd(float* x, int n, float eps)
    {
        float shift = x[0];
        var s = Vector512.Create(shift);
        double sum = 0, sq = 0;
        int i = 0, vecEnd = n & ~15;
        while (i < vecEnd)
        {
            int end = Math.Min(vecEnd, i + Chunk);
            Vector512<float> s0 = default, s1 = default, q0 = default, q1 = default;
            for (; i + 32 <= end; i += 32)
            {
                var a = Vector512.Load(x + i) - s;
                var b = Vector512.Load(x + i + 16) - s;
                s0 += a;
                s1 += b;
                q0 = Vector512.FusedMultiplyAdd(a, a, q0);
                q1 = Vector512.FusedMultiplyAdd(b, b, q1);
            }
            if (i < end)
            {
                var a = Vector512.Load(x + i) - s;
                s0 += a;
                q0 = Vector512.FusedMultiplyAdd(a, a, q0);
                i += 16;
            }
            sum += Vector512.Sum(s0 + s1);
            sq += Vector512.Sum(q0 + q1);
        }
        for (; i < n; i++)
        {
            double a = x[i] - shift;
            sum += a;
            sq += a * a;
        }
        double m = sum / n, var = Math.Max(sq / n - m * m, 0);
        return ((float)(shift + m), (float)(1 / Math.Sqrt(var + eps)));
    }

    /// <summary>y = (x − mean)·a + b; subtracting first avoids the cancellation of x·a + (b − mean·a) when |mean| ≫ std.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static void Affine(float* y, float* x, float mean, float a, float b, int n)
    {
        var vm = Vector512.Create(mean);
        var va = Vector512.Create(a);
        var vb = Vector512.Create(b);
        int i = 0;
        for (; i + 16 <= n; i += 16) Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - vm, va, vb).Store(y + i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i] - mean, a, b);
    }

    /// <summary>y = silu((x − mean)·a + b): the affine above with SiLU applied before the store; on either vector
    /// width, as SiLU's exp is where the time goes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static void AffineSilu<TV>(float* y, float* x, float mean, float a, float b, int n) where TV : struct, IVec<TV>
    {
        var vm = TV.Create(mean);
        var va = TV.Create(a);
        var vb = TV.Create(b);
        int i = 0;
        for (; i + TV.Count <= n; i += TV.Count) TV.Store(SiluActivation.Forward(TV.Fma(TV.Load(x + i) - vm, va, vb)), y + i);
        if (i < n) TV.StoreTail(SiluActivation.Forward(TV.Fma(TV.LoadTail(x + i, n - i) - vm, va, vb)), y + i, n - i);
    }

    /// <summary>dz = dy·silu'(z) with z = (x − mean)·a + b, written to dz (which may be dy), and (Σ dz, Σ dz·(x − mean))
    /// summed as DotSums sums them. The tail vector is zero padded: dy = 0 there adds nothing to either sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static (double Dz, double DzX) SiluGradSums<TV>(float* dz, float* dy, float* x, float mean, float a, float b, int n)
        where TV : struct, IVec<TV>
    {
        var vm = TV.Create(mean);
        var va = TV.Create(a);
        var vb = TV.Create(b);
        double sd = 0, sdx = 0;
        int i = 0, vecEnd = n - n % TV.Count;
        while (i < vecEnd)
        {
            int end = Math.Min(vecEnd, i + Chunk);
            TV d = TV.Zero, p = TV.Zero;
            for (; i < end; i += TV.Count)
            {
                var xc = TV.Load(x + i) - vm;
                var g = TV.Load(dy + i) * SiluActivation.Derivative(TV.Fma(xc, va, vb));
                TV.Store(g, dz + i);
                d += g;
                p = TV.Fma(g, xc, p);
            }
            sd += TV.Sum(d);
            sdx += TV.Sum(p);
        }
        if (i < n)
        {
            var xc = TV.LoadTail(x + i, n - i) - vm;
            var g = TV.LoadTail(dy + i, n - i) * SiluActivation.Derivative(TV.Fma(xc, va, vb));
            TV.StoreTail(g, dz + i, n - i);
            sd += TV.Sum(g);
            sdx += TV.Sum(g * xc);
        }
        return (sd, sdx);
    }

    /// <summary>(Σ dy, Σ dy·(x − mean)) over n elements: float lanes per chunk, double across chunks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static (double Dy, double DyX) DotSums(float* dy, float* x, float mean, int n)
    {
        var m = Vector512.Create(mean);
        double sd = 0, sdx = 0;
        int i = 0, vecEnd = n & ~15;
        while (i < vecEnd)
        {
            int end = Math.Min(vecEnd, i + Chunk);
            Vector512<float> d0 = default, d1 = default, p0 = default, p1 = default;
            for (; i + 32 <= end; i += 32)
            {
                var g0 = Vector512.Load(dy + i);
                var g1 = Vector512.Load(dy + i + 16);
                d0 += g0;
                d1 += g1;
                p0 = Vector512.FusedMultiplyAdd(g0, Vector512.Load(x + i) - m, p0);
                p1 = Vector512.FusedMultiplyAdd(g1, Vector512.Load(x + i + 16) - m, p1);
            }
            if (i < end)
            {
                var g0 = Vector512.Load(dy + i);
                d0 += g0;
                p0 = Vector512.FusedMultiplyAdd(g0, Vector512.Load(x + i) - m, p0);
                i += 16;
            }
            sd += Vector512.Sum(d0 + d1);
            sdx += Vector512.Sum(p0 + p1);
        }
        for (; i < n; i++)
        {
            sd += dy[i];
            sdx += (double)dy[i] * (x[i] - mean);
        }
        return (sd, sdx);
    }

    /// <summary>dx = dy·k1 + (x − mean)·k2 + k3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // see AdamWRange
    public static void GradInput(float* dx, float* dy, float* x, float k1, float mean, float k2, float k3, int n)
    {
        var v1 = Vector512.Create(k1);
        var vm = Vector512.Create(mean);
        var v2 = Vector512.Create(k2);
        var v3 = Vector512.Create(k3);
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var t = Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - vm, v2, v3);
            Vector512.FusedMultiplyAdd(Vector512.Load(dy + i), v1, t).Store(dx + i);
        }
        for (; i < n; i++) dx[i] = dy[i] * k1 + (x[i] - mean) * k2 + k3;
    }
}
