// Layer normalisation on the CPU: one-pass SIMD row statistics, fused affine, fused backward with per-chunk dgamma/dbeta.
using System.Buffers;
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Rows per task in layer norm; the backward keeps one float dgamma/dbeta partial per task.</summary>
    const int LayerNormRowsPerTask = 32;

    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma,
        DeviceBuffer beta, int rows, int dim, float eps)
    {
        LayerNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, rows, dim, eps);
        float* yp = F(y), mp = F(mean), rp = F(rstd), xp = F(x), gp = F(gamma), bp = F(beta);
        int tasks = (rows + LayerNormRowsPerTask - 1) / LayerNormRowsPerTask;
        void Body(int task)
        {
            int end = Math.Min(rows, (task + 1) * LayerNormRowsPerTask);
            for (int r = task * LayerNormRowsPerTask; r < end; r++)
            {
                float* xr = xp + (long)r * dim, yr = yp + (long)r * dim;
                var (mu, rs) = NormStats.MeanRstd(xr, dim, eps);
                mp[r] = mu;
                rp[r] = rs;
                var vm = Vector512.Create(mu);
                var vr = Vector512.Create(rs);
                int j = 0;
                for (; j + 16 <= dim; j += 16)
                {
                    var xhat = (Vector512.Load(xr + j) - vm) * vr;
                    Vector512.FusedMultiplyAdd(xhat, Vector512.Load(gp + j), Vector512.Load(bp + j)).Store(yr + j);
                }
                for (; j < dim; j++) yr[j] = (xr[j] - mu) * rs * gp[j] + bp[j];
            }
        }
        NormStats.For(tasks, (long)rows * dim, Body);
    }

    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        LayerNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, rows, dim);
        float* dxp = F(dx), dgp = F(dgamma), dbp = F(dbeta), dyp = F(dy), xp = F(x), mp = F(mean), rp = F(rstd), gp = F(gamma);
        int tasks = (rows + LayerNormRowsPerTask - 1) / LayerNormRowsPerTask;
        // Task t sums Σ dy·xhat and Σ dy over its ≤ 32 rows in float (rows [2t·dim, (2t+1)·dim) of partial); the
        // partials are then added in double, so no two tasks write one dgamma[j].
        float[] partial = ArrayPool<float>.Shared.Rent(2 * tasks * dim);
        fixed (float* part = partial)
        {
            float* pp = part;
            void Body(int task)
            {
                float* pg = pp + 2L * task * dim, pb = pg + dim;
                new Span<float>(pg, 2 * dim).Clear();
                int end = Math.Min(rows, (task + 1) * LayerNormRowsPerTask);
                for (int r = task * LayerNormRowsPerTask; r < end; r++)
                    LayerNormRowBackward(dxp + (long)r * dim, pg, pb, dyp + (long)r * dim, xp + (long)r * dim, mp[r], rp[r], gp, dim);
            }
            NormStats.For(tasks, 2L * rows * dim, Body);
            for (int j = 0; j < dim; j++)
            {
                double sg = 0, sb = 0;
                for (int t = 0; t < tasks; t++)
                {
                    sg += pp[2L * t * dim + j];
                    sb += pp[(2L * t + 1) * dim + j];
                }
                dgp[j] += (float)sg;
                dbp[j] += (float)sb;
            }
        }
        ArrayPool<float>.Shared.Return(partial);
    }

    /// <summary>One row: dgamma += dy·xhat, dbeta += dy, dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)).</summary>
    static void LayerNormRowBackward(float* dx, float* dg, float* db, float* dy, float* x, float mu, float rs, float* gamma, int dim)
    {
        var vm = Vector512.Create(mu);
        var vr = Vector512.Create(rs);
        Vector512<float> sd = default, sdx = default;
        int j = 0;
        for (; j + 16 <= dim; j += 16)
        {
            var g = Vector512.Load(dy + j);
            var xhat = (Vector512.Load(x + j) - vm) * vr;
            var dxhat = g * Vector512.Load(gamma + j);
            sd += dxhat;
            sdx = Vector512.FusedMultiplyAdd(dxhat, xhat, sdx);
            Vector512.FusedMultiplyAdd(g, xhat, Vector512.Load(dg + j)).Store(dg + j);
            (Vector512.Load(db + j) + g).Store(db + j);
        }
        float sumD = Vector512.Sum(sd), sumDX = Vector512.Sum(sdx);
        for (int t = j; t < dim; t++)
        {
            float xhat = (x[t] - mu) * rs, dxhat = dy[t] * gamma[t];
            sumD += dxhat;
            sumDX += dxhat * xhat;
            dg[t] += dy[t] * xhat;
            db[t] += dy[t];
        }
        float a = sumD / dim, b = sumDX / dim;
        var va = Vector512.Create(a);
        var vb = Vector512.Create(b);
        for (j = 0; j + 16 <= dim; j += 16)
        {
            var xhat = (Vector512.Load(x + j) - vm) * vr;
            var dxhat = Vector512.Load(dy + j) * Vector512.Load(gamma + j);
            ((dxhat - va - xhat * vb) * vr).Store(dx + j);
        }
        for (; j < dim; j++)
        {
            float xhat = (x[j] - mu) * rs;
            dx[j] = (dy[j] * gamma[j] - a - xhat * b) * rs;
        }
    }
}
