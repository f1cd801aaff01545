// Multi-head scaled-dot-product attention: the double oracle (forward with log-sum-exp, backward), its validation, and the reference entry points.
namespace DreamBooth.Kernels.Reference;

public static class AttentionReference
{
    /// <summary>For each (b, h, query i): s_j = scale·q_i·k_j over the visible keys (j ≤ i when causal),
    /// lse_i = log Σ_j exp(s_j), o_i = Σ_j exp(s_j − lse_i)·v_j.</summary>
    public static void Forward(Span<double> o, Span<double> lse, // (B, Lq, H, D) (B, H, Lq)
        ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, // (B, Lq, H, D) (B, Lk, H, D) (B, Lk, H, D)
        in AttentionShape s)
    {
        int heads = s.Heads, d = s.HeadDim;
        double scale = s.EffectiveScale;
        var scores = new double[s.KeyLen];
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < s.QueryLen; i++)
                {
                    int qi = ((b * s.QueryLen + i) * heads + h) * d;
                    int visible = Visible(s, i);
                    double max = double.NegativeInfinity, sum = 0;
                    for (int j = 0; j < visible; j++)
                    {
                        int kj = ((b * s.KeyLen + j) * heads + h) * d;
                        double dot = 0;
                        for (int t = 0; t < d; t++) dot += q[qi + t] * k[kj + t];
                        scores[j] = scale * dot;
                        max = Math.Max(max, scores[j]);
                    }
                    for (int j = 0; j < visible; j++) sum += Math.Exp(scores[j] - max);
                    double l = max + Math.Log(sum);
                    lse[(b * heads + h) * s.QueryLen + i] = l;
                    o.Slice(qi, d).Clear();
                    for (int j = 0; j < visible; j++)
                    {
                        int vj = ((b * s.KeyLen + j) * heads + h) * d;
                        double p = Math.Exp(scores[j] - l);
                        for (int t = 0; t < d; t++) o[qi + t] += p * v[vj + t];
                    }
                }
    }

    /// <summary>Recomputes P = exp(scale·q·kᵀ − lse) and, with Δ_i = Σ dO_i·O_i: dV = Pᵀ·dO, dP = dO·Vᵀ,
    /// dS = P∘(dP − Δ), dQ = scale·dS·K, dK = scale·dSᵀ·Q. dq, dk, dv are overwritten.</summary>
    public static void Backward(Span<double> dq, Span<double> dk, Span<double> dv, // (B, Lq, H, D) (B, Lk, H, D) (B, Lk, H, D)
        ReadOnlySpan<double> dout, ReadOnlySpan<double> q, ReadOnlySpan<double> k, // (B, Lq, H, D) (B, Lq, H, D) (B, Lk, H, D)
        ReadOnlySpan<double> v, ReadOnlySpan<double> o, ReadOnlySpan<double> lse, // (B, Lk, H, D) (B, Lq, H, D) (B, H, Lq)
        in AttentionShape s)
    {
        int heads = s.Heads, d = s.HeadDim;
        double scale = s.EffectiveScale;
        dq.Clear();
        dk.Clear();
        dv.Clear();
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < s.QueryLen; i++)
                {
                    int qi = ((b * s.QueryLen + i) * heads + h) * d;
                    double delta = 0;
                    for (int t = 0; t < d; t++) delta += dout[qi + t] * o[qi + t];
                    double l = lse[(b * heads + h) * s.QueryLen + i];
                    for (int j = 0; j < Visible(s, i); j++)
                    {
                        int kj = ((b * s.KeyLen + j) * heads + h) * d;
                        double dot = 0, dp = 0;
                        for (int t = 0; t < d; t++)
                        {
                            dot += q[qi + t] * k[kj + t];
                            dp += dout[qi + t] * v[kj + t];
                        }
                        double p = Math.Exp(scale * dot - l);
                        double ds = p * (dp - delta);
                        for (int t = 0; t < d; t++)
                        {
                            dv[kj + t] += p * dout[qi + t];
                            dq[qi + t] += scale * ds * k[kj + t];
                            dk[kj + t] += scale * ds * q[qi + t];
                        }
                    }
                }
    }

    /// <summary>Keys visible to query i: all of them, or j ≤ i when causal.</summary>
    static int Visible(in AttentionShape s, int i) => s.Causal ? Math.Min(s.KeyLen, i + 1) : s.KeyLen;
}

public sealed partial class ReferenceBackend
{
    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        s.ValidateForward(o, lse, q, k, v);
        var od = new double[o.Length];
        var ld = new double[lse.Length];
        AttentionReference.Forward(od, ld, D(q), D(k), D(v), s);
        Store(o, od);
        Store(lse, ld);
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q,
        DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        s.ValidateBackward(dq, dk, dv, dout, q, k, v, o, lse);
        var dqd = new double[dq.Length];
        var dkd = new double[dk.Length];
        var dvd = new double[dv.Length];
        AttentionReference.Backward(dqd, dkd, dvd, D(dout), D(q), D(k), D(v), D(o), D(lse), s);
        Store(dq, dqd);
        Store(dk, dkd);
        Store(dv, dvd);
    }
}
