// AdamW as one fused Vector512 pass over param, grad, m and v, parallel over chunks; f32 arithmetic.
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>The step's scalars, computed once in double: p ← p·Decay − StepSize · m / (√v · InvSqrtBc2 + Eps),
    /// the formula of <see cref="AdamWReference"/> with the bias corrections folded into two constants.</summary>
    readonly record struct AdamWFactors(float Scale, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2,
        float Decay, float StepSize, float InvSqrtBc2, float Eps);

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        s.Validate(param, grad, m, v, n);
        double bc1 = 1 - Math.Pow(s.Beta1, s.Step), bc2 = 1 - Math.Pow(s.Beta2, s.Step);
        var f = new AdamWFactors(s.GradScale, s.Beta1, (float)(1 - (double)s.Beta1), s.Beta2, (float)(1 - (double)s.Beta2),
            (float)(1 - (double)s.Lr * s.WeightDecay), (float)(s.Lr / bc1), (float)(1 / Math.Sqrt(bc2)), s.Eps);
        float* pp = F(param), pg = F(grad), pm = F(m), pv = F(v);
        Chunks.For(n, 1 << 15, (start, end) => AdamWRange(pp, pg, pm, pv, start, end, f));
    }

    static void AdamWRange(float* p, float* g, float* m, float* v, long start, long end, AdamWFactors f)
    {
        long i = start;
        if (Vector512.IsHardwareAccelerated)
        {
            var scale = Vector512.Create(f.Scale);
            var beta1 = Vector512.Create(f.Beta1);
            var oneMinusBeta1 = Vector512.Create(f.OneMinusBeta1);
            var beta2 = Vector512.Create(f.Beta2);
            var oneMinusBeta2 = Vector512.Create(f.OneMinusBeta2);
            var decay = Vector512.Create(f.Decay);
            var stepSize = Vector512.Create(f.StepSize);
            var invSqrtBc2 = Vector512.Create(f.InvSqrtBc2);
            var eps = Vector512.Create(f.Eps);
            for (; i + 16 <= end; i += 16)
            {
                var gi = Vector512.Load(g + i) * scale;
                var mi = beta1 * Vector512.Load(m + i) + oneMinusBeta1 * gi;
                var vi = beta2 * Vector512.Load(v + i) + oneMinusBeta2 * gi * gi;
                var denom = Vector512.Sqrt(vi) * invSqrtBc2 + eps;
                (Vector512.Load(p + i) * decay - stepSize * mi / denom).Store(p + i);
                mi.Store(m + i);
                vi.Store(v + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = g[i] * f.Scale;
            m[i] = f.Beta1 * m[i] + f.OneMinusBeta1 * gi;
            v[i] = f.Beta2 * v[i] + f.OneMinusBeta2 * gi * gi;
            p[i] = p[i] * f.Decay - f.StepSize * m[i] / (MathF.Sqrt(v[i]) * f.InvSqrtBc2 + f.Eps);
        }
    }
}
