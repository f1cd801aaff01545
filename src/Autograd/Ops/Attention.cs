// Multi-head scaled-dot-product attention on the fused (flash-style) kernels; the backward reuses the saved log-sum-exp.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>softmax(q·kᵀ/√D)·v per head, with heads interleaved in the last axis exactly as a linear projection
    /// writes them: (B, L, H·D) is the kernel's (B, L, H, D). Causal masks key j > query i.</summary>
    public static Tensor Attention(Tensor q,   // (B, Lq, H·D)
        Tensor k,                              // (B, Lk, H·D)
        Tensor v,                              // (B, Lk, H·D)
        int heads, bool causal = false)
    {
        if (q.Rank != 3 || k.Rank != 3 || v.Rank != 3 || !k.Shape.SequenceEqual(v.Shape) || q.Dim(0) != k.Dim(0) ||
            q.Dim(2) != k.Dim(2) || heads <= 0 || q.Dim(2) % heads != 0)
            throw new ArgumentException($"attention: q {q}, k {k}, v {v} with {heads} heads do not fit " +
                                        "(q (B, Lq, H·D), k and v (B, Lk, H·D), H·D divisible by heads)");
        q = Contiguous(q);
        k = Contiguous(k);
        v = Contiguous(v);
        var s = new AttentionShape(q.Dim(0), heads, q.Dim(1), k.Dim(1), q.Dim(2) / heads, causal);
        var o = Tensor.EmptyLike(q);
        var lse = Tensor.Empty(q.Backend, s.Batch, s.Heads, s.QueryLen);   // log Σ_j exp(score_ij) of every query row
        q.Backend.Attention(o.Storage, lse.Storage, q.Storage, k.Storage, v.Storage, s);
        if (Tape.Needs(q, k, v))
            Tape.Record("attention", o, dout =>
            {   // P = exp(S − lse) recomputed from the saved lse; dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)),
                // dQ = dS·K/√D, dK = dSᵀ·Q/√D (the kernel overwrites all three)
                var dq = Tensor.EmptyLike(q);
                var dk = Tensor.EmptyLike(k);
                var dv = Tensor.EmptyLike(v);
                q.Backend.AttentionBackward(dq.Storage, dk.Storage, dv.Storage, dout.Storage, q.Storage, k.Storage,
                    v.Storage, o.Storage, lse.Storage, s);
                Gradients.Accumulate(q, dq);
                Gradients.Accumulate(k, dk);
                Gradients.Accumulate(v, dv);
            });
        return o;
    }
}
