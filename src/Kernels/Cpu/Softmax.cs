// Softmax over the last axis on the CPU: row max, then exp and sum in one vector pass, then the scaling pass; parallel over rows.
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax", y, "y", x, "x", x, "x", rows, cols);
        float* yp = F(y), xp = F(x);
        int perTask = Math.Max(1, 8192 / cols);
        NormStats.For((rows + perTask - 1) / perTask, (long)rows * cols * 4, task =>
        {
            for (int r = task * perTask, end = Math.Min(rows, r + perTask); r < end; r++)
                SoftmaxRow(yp + (long)r * cols, xp + (long)r * cols, cols);
        });
    }

    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax backward", dx, "dx", dy, "dy", y, "y", rows, cols);
        float* dxp = F(dx), dyp = F(dy), yp = F(y);
        int perTask = Math.Max(1, 8192 / cols);
        NormStats.For((rows + perTask - 1) / perTask, (long)rows * cols * 2, task =>
        {
            for (int r = task * perTask, end = Math.Min(rows, r + perTask); r < end; r++)
            {
                long at = (long)r * cols;
                SoftmaxRowBackward(dxp + at, dyp + at, yp + at, cols);
            }
        });
    }

    static void SoftmaxRow(float* y, float* x, int n)
    {
        int j = 0;
        var vmax = Vector512.Create(float.NegativeInfinity);
        for (; j + 16 <= n; j += 16) vmax = Vector512.MaxNative(vmax, Vector512.Load(x + j));
        float max = SoftmaxExp.HorizontalMax(vmax);
        for (; j < n; j++) max = MathF.Max(max, x[j]);
        // exp(x − max) = 2^(x·log2e − max·log2e)
        var l2e = Vector512.Create(SoftmaxExp.Log2E);
        var shift = Vector512.Create(-max * SoftmaxExp.Log2E);
        Vector512<float> vsum = default;
        for (j = 0; j + 16 <= n; j += 16)
        {
            var e = SoftmaxExp.Exp2(Vector512.FusedMultiplyAdd(Vector512.Load(x + j), l2e, shift));
            vsum += e;
            e.Store(y + j);
        }
        float sum = Vector512.Sum(vsum);
        for (; j < n; j++) sum += y[j] = MathF.Exp(x[j] - max);
        float inv = 1 / sum;
        var vinv = Vector512.Create(inv);
        for (j = 0; j + 16 <= n; j += 16) (Vector512.Load(y + j) * vinv).Store(y + j);
        for (; j < n; j++) y[j] *= inv;
    }

    static void SoftmaxRowBackward(float* dx, float* dy, float* y, int n)
    {
        int j = 0;
        Vector512<float> vdot = default;
        for (; j + 16 <= n; j += 16) vdot = Vector512.FusedMultiplyAdd(Vector512.Load(dy + j), Vector512.Load(y + j), vdot);
        float dot = Vector512.Sum(vdot);
        for (; j < n; j++) dot += dy[j] * y[j];
        var vd = Vector512.Create(dot);
        for (j = 0; j + 16 <= n; j += 16) (Vector512.Load(y + j) * (Vector512.Load(dy + j) - vd)).Store(dx + j);
        for (; j < n; j++) dx[j] = y[j] * (dy[j] - dot);
    }
}

/// <summary>The vector exponential used by softmax and attention.</summary>
static class SoftmaxExp
{
    public const float Log2E = 1.44269504f;

    /// <summary>2^x for x ≤ 0 (all that softmax needs): x = n + f with n = round(x), |f| ≤ ½, 2^f from its degree-6 Taylor
    /// polynomial in f·ln2 (truncation < 1.2e-7 relative), 2^n built in the exponent bits. Results below 2^−126.5
    /// flush to 0, and −∞ gives 0. Adding 1.5·2^23 rounds x to an integer held in the low mantissa bits, so no
    /// float→int conversion (with its saturation fix-ups) is needed; MaxNative skips the IEEE NaN/±0 fix-ups of Max.</summary>
    public static Vector512<float> Exp2(Vector512<float> x)
    {
        var magic = Vector512.Create(12582912f);
        x = Vector512.MaxNative(x, Vector512.Create(-127f));
        var t = x + magic;
        var f = x - (t - magic);
        var p = Vector512.Create(1.5403530e-4f);
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(1.3333558e-3f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(9.6181291e-3f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(5.5504109e-2f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.24022651f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.69314718f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(1f));
        var bits = Vector512.ShiftLeft(t.AsInt32(), 23) + Vector512.Create(127 << 23);
        return p * bits.AsSingle();
    }

    /// <summary>Exp2 of eight lanes, for machines without AVX-512 (the same steps and constants).</summary>
    public static Vector256<float> Exp2(Vector256<float> x)
    {
        var magic = Vector256.Create(12582912f);
        x = Vector256.MaxNative(x, Vector256.Create(-127f));
        var t = x + magic;
        var f = x - (t - magic);
        var p = Vector256.Create(1.5403530e-4f);
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(1.3333558e-3f));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(9.6181291e-3f));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(5.5504109e-2f));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(0.24022651f));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(0.69314718f));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(1f));
        var bits = Vector256.ShiftLeft(t.AsInt32(), 23) + Vector256.Create(127 << 23);
        return p * bits.AsSingle();
    }

    public static float HorizontalMax(Vector512<float> v)
    {
        var h = Vector256.MaxNative(v.GetLower(), v.GetUpper());
        var q = Vector128.MaxNative(h.GetLower(), h.GetUpper());
        q = Vector128.MaxNative(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        return MathF.Max(q[0], q[1]);
    }
}
