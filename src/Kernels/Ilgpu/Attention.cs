// CUDA-tier fused attention: flash-style forward (online softmax, log-sum-exp) and backward (Δ, dK/dV, dQ), never the score matrix.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attention;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionDelta;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionKey;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionQuery;

    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        s.ValidateForward(o, lse, q, k, v);
        const string op = "attention";
        _attention ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.Forward);
        _attention(WithinGridLimits(op, AttentionKernels.ForwardConfig(s)), F(op, o), F(op, lse), F(op, q), F(op, k), F(op, v), AttentionKernels.Args.From(s));
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        s.ValidateBackward(dq, dk, dv, dout, q, k, v, o, lse);
        const string op = "attention backward";
        _attentionDelta ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.Delta);
        _attentionKey ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.KeyGrad);
        _attentionQuery ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.QueryGrad);
        var args = AttentionKernels.Args.From(s);
        KernelConfig keyConfig = WithinGridLimits(op, AttentionKernels.KeyGradConfig(s)), queryConfig = WithinGridLimits(op, AttentionKernels.QueryGradConfig(s));
        using var delta = Scratch(s.LseLength);   // Δ = rowsum(dO ∘ O), (B, H, Lq)
        ArrayView<float> vdout = F(op, dout), vq = F(op, q), vk = F(op, k), vv = F(op, v), vlse = F(op, lse);
        _attentionDelta(AttentionKernels.DeltaConfig(s), delta.F32, vdout, F(op, o), args);
        _attentionKey(keyConfig, F(op, dk), F(op, dv), vdout, vq, vk, vv, vlse, delta.F32, args);
        _attentionQuery(queryConfig, F(op, dq), vdout, vq, vk, vv, vlse, delta.F32, args);
    }
}

/// <summary>
/// Attention with AttentionShape's layout: q, o, dq, dO (B, Lq, H, D); k, v, dk, dv (B, Lk, H, D); lse, Δ (B, H, Lq).
/// A warp owns a few rows (queries, or keys in the dK/dV kernel); lane c of the warp holds elements c, c+32, …, c+224 of
/// each of its row vectors in registers (Vec8, D ≤ 256). The other side is staged 32 rows at a time in dynamic shared
/// memory, row stride 32·⌈D/32⌉+1 floats (odd, so 32 lanes reading 32 different rows hit 32 banks), zero-padded past D:
/// lane j computes the dot products of the warp's rows with staged row j (broadcasting the rows' elements by Warp.Shuffle,
/// each staged value read once for all of the warp's rows), so one tile of 32 scores is one register per lane and row;
/// products with the staged tile (P·V, dS·K, …) shuffle lane j's weights and read staged row j at 32 consecutive columns,
/// again once for all of the warp's rows. Only one tile is staged at a time (the dK/dV kernel stages dO twice), so the
/// shared memory is 32·(32·⌈D/32⌉+1)·4 bytes: 20.6 KB for D=160, 32.9 KB for D=256, under the 48 KB default.
/// Assumes warps of 32 lanes (CUDA, and the emulator's Nvidia device). Exp/Log become ex2/lg2.approx on PTX, so GPU
/// results differ from the CPU emulator's by a few ulp. Index arithmetic is in long; B·H and the block counts fit grid dims.
/// </summary>
public static class AttentionKernels
{
    const int Lanes = 32, Warps = 8, Threads = Lanes * Warps;
    /// <summary>Rows per warp: 4 queries in the forward (32 per group), 2 keys or queries in the backward (16 per group).</summary>
    const int ForwardRows = 4, BackwardRows = 2;
    const int ForwardBlock = Warps * ForwardRows, BackwardBlock = Warps * BackwardRows;

    public readonly record struct Args(int Batch, int Heads, int QueryLen, int KeyLen, int HeadDim, int Causal, float Scale,
        int Width, int Stride)
    {
        /// <summary>Width: D rounded up to a multiple of 32 (the staged columns); Stride: Width + 1 (the staged row stride).</summary>
        public static Args From(in AttentionShape s)
        {
            int width = (s.HeadDim + Lanes - 1) / Lanes * Lanes;
            return new(s.Batch, s.Heads, s.QueryLen, s.KeyLen, s.HeadDim, s.Causal ? 1 : 0, s.EffectiveScale, width, width + 1);
        }
    }

    /// <summary>Floats of dynamic shared memory per group: one staged tile of 32 rows.</summary>
    public static int SharedFloats(in AttentionShape s) => Lanes * Args.From(s).Stride;

    static KernelConfig Blocks(in AttentionShape s, int rows, int block) =>
        new(new Index2D((rows + block - 1) / block, s.Batch * s.Heads), new Index2D(Threads, 1),
            SharedMemoryConfig.RequestDynamic<float>(SharedFloats(s)));

    public static KernelConfig ForwardConfig(in AttentionShape s) => Blocks(s, s.QueryLen, ForwardBlock);
    public static KernelConfig KeyGradConfig(in AttentionShape s) => Blocks(s, s.KeyLen, BackwardBlock);
    public static KernelConfig QueryGradConfig(in AttentionShape s) => Blocks(s, s.QueryLen, BackwardBlock);

    /// <summary>Δ: one warp per (b, i, h) row, 8 rows per group.</summary>
    public static KernelConfig DeltaConfig(in AttentionShape s) =>
        new(new Index1D((int)((s.LseLength + Warps - 1) / Warps)), new Index1D(Threads));

    /// <summary>Eight floats of a row vector held by one lane: elements lane, lane+32, …, lane+224.</summary>
    public struct Vec8
    {
        public float C0, C1, C2, C3, C4, C5, C6, C7;
    }

    /// <summary>Forward. Group (x, y): queries 32x … 32x+31 of (b, h) = (y / H, y % H); warp w owns queries 32x+4w … +3.
    /// Per tile of 32 keys: stage K, each lane scores its key against the warp's 4 queries; stage V, online softmax
    /// (running max m and sum l, the accumulator rescaled by exp(m_old − m_new)) and O += P·V. Causal groups stop at the
    /// tile past their last query.</summary>
    [GpuKernel("attention_f32_forward", explicitlyGrouped: true)]
    public static void Forward(ArrayView<float> o, ArrayView<float> lse, // (B, Lq, H, D) (B, H, Lq)
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, // (B, Lq, H, D) (B, Lk, H, D) (B, Lk, H, D)
        Args p)
    {
        var tile = SharedMemory.GetDynamic<float>(); // (32, Stride)
        int lane = Warp.LaneIdx, bh = Grid.IdxY, b = bh / p.Heads, h = bh % p.Heads;
        int q0 = Grid.IdxX * ForwardBlock, first = q0 + Warp.WarpIdx * ForwardRows;
        long qBase = ((long)b * p.QueryLen * p.Heads + h) * p.HeadDim, kBase = ((long)b * p.KeyLen * p.Heads + h) * p.HeadDim;
        long rowStep = (long)p.Heads * p.HeadDim;
        var r0 = StartRow(q, qBase, rowStep, first, p, lane);
        var r1 = StartRow(q, qBase, rowStep, first + 1, p, lane);
        var r2 = StartRow(q, qBase, rowStep, first + 2, p, lane);
        var r3 = StartRow(q, qBase, rowStep, first + 3, p, lane);
        int keyEnd = p.Causal != 0 ? XMath.Min(p.KeyLen, q0 + ForwardBlock) : p.KeyLen;
        for (int k0 = 0; k0 < keyEnd; k0 += Lanes)
        {
            int key = k0 + lane, count = XMath.Min(Lanes, p.KeyLen - k0);
            Stage(tile, k, kBase, rowStep, k0, p.KeyLen, p);
            Group.Barrier();
            var dots = Dot4(r0.Q, r1.Q, r2.Q, r3.Q, tile, lane * p.Stride, p.HeadDim);
            float s0 = Score(r0, dots.A, key, p), s1 = Score(r1, dots.B, key, p);
            float s2 = Score(r2, dots.C, key, p), s3 = Score(r3, dots.D, key, p);
            Group.Barrier();
            Stage(tile, v, kBase, rowStep, k0, p.KeyLen, p);
            Group.Barrier();
            r0 = Softmax(r0, s0);
            r1 = Softmax(r1, s1);
            r2 = Softmax(r2, s2);
            r3 = Softmax(r3, s3);
            var sums = Accumulate4(r0.O, r1.O, r2.O, r3.O, r0.Weight, r1.Weight, r2.Weight, r3.Weight, tile, count, p, lane);
            r0.O = sums.A;
            r1.O = sums.B;
            r2.O = sums.C;
            r3.O = sums.D;
            Group.Barrier();
        }
        Finish(o, lse, r0, qBase, rowStep, bh, p, lane);
        Finish(o, lse, r1, qBase, rowStep, bh, p, lane);
        Finish(o, lse, r2, qBase, rowStep, bh, p, lane);
        Finish(o, lse, r3, qBase, rowStep, bh, p, lane);
    }

    /// <summary>One query of the forward: its q (pre-loaded), the O accumulator, running max and sum, and this lane's
    /// key weight exp(s − max) in the current tile.</summary>
    struct ForwardRow
    {
        public Vec8 Q, O;
        public float Max, Sum, Weight;
        public int Index;
    }

    static ForwardRow StartRow(ArrayView<float> q, long qBase, long rowStep, int i, Args p, int lane)
    {
        var r = new ForwardRow { Max = float.NegativeInfinity, Index = i };
        if (i < p.QueryLen) r.Q = Load(q, qBase + i * rowStep, p.HeadDim, lane);
        return r;
    }

    /// <summary>scale·q·k for this lane's key, −∞ where the key is past Lk, causally hidden, or the query is past Lq.</summary>
    static float Score(ForwardRow r, float dot, int key, Args p)
    {
        bool visible = key < p.KeyLen && r.Index < p.QueryLen && (p.Causal == 0 || key <= r.Index);
        return visible ? p.Scale * dot : float.NegativeInfinity;
    }

    /// <summary>Online softmax step over one tile of scores (one per lane): the new max m, the weights exp(s − m), and the
    /// sum and O rescaled by exp(m_old − m); Accumulate4 then adds Σ_j weight_j·v_j to O.</summary>
    static ForwardRow Softmax(ForwardRow r, float score)
    {
        float max = XMath.Max(r.Max, WarpMax(score));
        bool none = max == float.NegativeInfinity;
        r.Weight = none ? 0f : XMath.Exp(score - max);
        float rescale = none ? 1f : XMath.Exp(r.Max - max);
        r.Sum = r.Sum * rescale + WarpSum(r.Weight);
        r.O = Scaled(r.O, rescale);
        r.Max = max;
        return r;
    }

    static void Finish(ArrayView<float> o, ArrayView<float> lse, ForwardRow r, long qBase, long rowStep, int bh, Args p, int lane)
    {
        if (r.Index >= p.QueryLen) return;
        Store(o, qBase + r.Index * rowStep, Scaled(r.O, 1f / r.Sum), p.HeadDim, lane);
        if (lane == 0) lse[(long)bh * p.QueryLen + r.Index] = r.Max + XMath.Log(r.Sum);
    }

    /// <summary>Δ_i = Σ_t dO_i[t]·O_i[t]: warp w of group x reduces row 8x+w of the (B·Lq·H, D) view; stored at (b, h, i).</summary>
    [GpuKernel("attention_f32_backward_delta", explicitlyGrouped: true)]
    public static void Delta(ArrayView<float> delta, // (B, H, Lq)
        ArrayView<float> dout, ArrayView<float> o, // (B, Lq, H, D) (B, Lq, H, D)
        Args p)
    {
        long row = (long)Grid.IdxX * Warps + Warp.WarpIdx;
        if (row >= (long)p.Batch * p.QueryLen * p.Heads) return; // whole warps leave together: the shuffles below stay full
        float sum = 0;
        for (int t = Warp.LaneIdx; t < p.HeadDim; t += Lanes) sum += dout[row * p.HeadDim + t] * o[row * p.HeadDim + t];
        sum = WarpSum(sum);
        long h = row % p.Heads, i = row / p.Heads % p.QueryLen, b = row / p.Heads / p.QueryLen;
        if (Warp.LaneIdx == 0) delta[(b * p.Heads + h) * p.QueryLen + i] = sum;
    }

    /// <summary>dK, dV. Group (x, y): keys 16x … 16x+15 of (b, h); warp w owns keys 16x+2w, +1 with k, v and the dK, dV
    /// accumulators in registers. Per tile of 32 queries (causal: from the tile holding the block's first key): stage dO,
    /// lane i gets dP = dO_i·v; stage Q, P = exp(scale·q_i·k − lse_i), dS = P(dP − Δ_i), dK += Σ_i dS_i·q_i; stage dO
    /// again, dV += Σ_i P_i·dO_i. Every key row is written once, with no atomics (deterministic).</summary>
    [GpuKernel("attention_f32_backward_key", explicitlyGrouped: true)]
    public static void KeyGrad(ArrayView<float> dk, ArrayView<float> dv, // (B, Lk, H, D) (B, Lk, H, D)
        ArrayView<float> dout, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, // (B, Lq, H, D) (B, Lq, H, D) (B, Lk, H, D) (B, Lk, H, D)
        ArrayView<float> lse, ArrayView<float> delta, // (B, H, Lq) (B, H, Lq)
        Args p)
    {
        var tile = SharedMemory.GetDynamic<float>(); // (32, Stride)
        int lane = Warp.LaneIdx, bh = Grid.IdxY, b = bh / p.Heads, h = bh % p.Heads;
        int k0 = Grid.IdxX * BackwardBlock, first = k0 + Warp.WarpIdx * BackwardRows;
        long qBase = ((long)b * p.QueryLen * p.Heads + h) * p.HeadDim, kBase = ((long)b * p.KeyLen * p.Heads + h) * p.HeadDim;
        long rowStep = (long)p.Heads * p.HeadDim;
        var r0 = StartKey(k, v, kBase, rowStep, first, p, lane);
        var r1 = StartKey(k, v, kBase, rowStep, first + 1, p, lane);
        int queryStart = p.Causal != 0 ? k0 / Lanes * Lanes : 0;
        for (int i0 = queryStart; i0 < p.QueryLen; i0 += Lanes)
        {
            int query = i0 + lane, count = XMath.Min(Lanes, p.QueryLen - i0);
            float rowLse = query < p.QueryLen ? lse[(long)bh * p.QueryLen + query] : 0f;
            float rowDelta = query < p.QueryLen ? delta[(long)bh * p.QueryLen + query] : 0f;
            Stage(tile, dout, qBase, rowStep, i0, p.QueryLen, p);
            Group.Barrier();
            var dp = Dot2(r0.V, r1.V, tile, lane * p.Stride, p.HeadDim);
            Group.Barrier();
            Stage(tile, q, qBase, rowStep, i0, p.QueryLen, p);
            Group.Barrier();
            var dots = Dot2(r0.K, r1.K, tile, lane * p.Stride, p.HeadDim);
            float p0 = Probability(dots.A, r0.Index, query, rowLse, p), p1 = Probability(dots.B, r1.Index, query, rowLse, p);
            var dks = Accumulate2(r0.DK, r1.DK, p0 * (dp.A - rowDelta), p1 * (dp.B - rowDelta), tile, count, p, lane);
            r0.DK = dks.A;
            r1.DK = dks.B;
            Group.Barrier();
            Stage(tile, dout, qBase, rowStep, i0, p.QueryLen, p);
            Group.Barrier();
            var dvs = Accumulate2(r0.DV, r1.DV, p0, p1, tile, count, p, lane);
            r0.DV = dvs.A;
            r1.DV = dvs.B;
            Group.Barrier();
        }
        FinishKey(dk, dv, r0, kBase, rowStep, p, lane);
        FinishKey(dk, dv, r1, kBase, rowStep, p, lane);
    }

    /// <summary>One key of the dK/dV kernel: its k and v, and the dK (unscaled) and dV accumulators.</summary>
    struct KeyRow
    {
        public Vec8 K, V, DK, DV;
        public int Index;
    }

    static KeyRow StartKey(ArrayView<float> k, ArrayView<float> v, long kBase, long rowStep, int j, Args p, int lane)
    {
        var r = new KeyRow { Index = j };
        if (j >= p.KeyLen) return r;
        r.K = Load(k, kBase + j * rowStep, p.HeadDim, lane);
        r.V = Load(v, kBase + j * rowStep, p.HeadDim, lane);
        return r;
    }

    static void FinishKey(ArrayView<float> dk, ArrayView<float> dv, KeyRow r, long kBase, long rowStep, Args p, int lane)
    {
        if (r.Index >= p.KeyLen) return;
        Store(dk, kBase + r.Index * rowStep, Scaled(r.DK, p.Scale), p.HeadDim, lane);
        Store(dv, kBase + r.Index * rowStep, r.DV, p.HeadDim, lane);
    }

    /// <summary>P of one (query, key) pair from its q·k: exp(scale·q·k − lse), 0 where hidden or out of range.</summary>
    static float Probability(float dot, int key, int query, float rowLse, Args p)
    {
        bool visible = query < p.QueryLen && key < p.KeyLen && (p.Causal == 0 || key <= query);
        return visible ? XMath.Exp(p.Scale * dot - rowLse) : 0f;
    }

    /// <summary>dQ. Group (x, y): queries 16x … 16x+15 of (b, h); warp w owns queries 16x+2w, +1 with q, dO and the dQ
    /// accumulator in registers. Per tile of 32 keys (causal: up to the block's last query): stage V, lane j gets
    /// dP = dO·v_j; stage K, P = exp(scale·q·k_j − lse), dS = P(dP − Δ), dQ += Σ_j dS_j·k_j.</summary>
    [GpuKernel("attention_f32_backward_query", explicitlyGrouped: true)]
    public static void QueryGrad(ArrayView<float> dq, // (B, Lq, H, D)
        ArrayView<float> dout, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, // (B, Lq, H, D) (B, Lq, H, D) (B, Lk, H, D) (B, Lk, H, D)
        ArrayView<float> lse, ArrayView<float> delta, // (B, H, Lq) (B, H, Lq)
        Args p)
    {
        var tile = SharedMemory.GetDynamic<float>(); // (32, Stride)
        int lane = Warp.LaneIdx, bh = Grid.IdxY, b = bh / p.Heads, h = bh % p.Heads;
        int q0 = Grid.IdxX * BackwardBlock, first = q0 + Warp.WarpIdx * BackwardRows;
        long qBase = ((long)b * p.QueryLen * p.Heads + h) * p.HeadDim, kBase = ((long)b * p.KeyLen * p.Heads + h) * p.HeadDim;
        long rowStep = (long)p.Heads * p.HeadDim;
        var r0 = StartQuery(dout, q, lse, delta, qBase, rowStep, bh, first, p, lane);
        var r1 = StartQuery(dout, q, lse, delta, qBase, rowStep, bh, first + 1, p, lane);
        int keyEnd = p.Causal != 0 ? XMath.Min(p.KeyLen, q0 + BackwardBlock) : p.KeyLen;
        for (int k0 = 0; k0 < keyEnd; k0 += Lanes)
        {
            int key = k0 + lane, count = XMath.Min(Lanes, p.KeyLen - k0);
            Stage(tile, v, kBase, rowStep, k0, p.KeyLen, p);
            Group.Barrier();
            var dp = Dot2(r0.DO, r1.DO, tile, lane * p.Stride, p.HeadDim);
            Group.Barrier();
            Stage(tile, k, kBase, rowStep, k0, p.KeyLen, p);
            Group.Barrier();
            var dots = Dot2(r0.Q, r1.Q, tile, lane * p.Stride, p.HeadDim);
            float p0 = Probability(dots.A, key, r0.Index, r0.Lse, p), p1 = Probability(dots.B, key, r1.Index, r1.Lse, p);
            var dqs = Accumulate2(r0.DQ, r1.DQ, p0 * (dp.A - r0.Delta), p1 * (dp.B - r1.Delta), tile, count, p, lane);
            r0.DQ = dqs.A;
            r1.DQ = dqs.B;
            Group.Barrier();
        }
        if (r0.Index < p.QueryLen) Store(dq, qBase + r0.Index * rowStep, Scaled(r0.DQ, p.Scale), p.HeadDim, lane);
        if (r1.Index < p.QueryLen) Store(dq, qBase + r1.Index * rowStep, Scaled(r1.DQ, p.Scale), p.HeadDim, lane);
    }

    /// <summary>One query of the dQ kernel: q, dO, lse, Δ and the dQ (unscaled) accumulator. Index ≥ Lq: an idle row
    /// (its Probability is 0), still present so the warp's shuffles stay full.</summary>
    struct QueryRow
    {
        public Vec8 Q, DO, DQ;
        public float Lse, Delta;
        public int Index;
    }

    static QueryRow StartQuery(ArrayView<float> dout, ArrayView<float> q, ArrayView<float> lse, ArrayView<float> delta,
        long qBase, long rowStep, int bh, int i, Args p, int lane)
    {
        var r = new QueryRow { Index = i };
        if (i >= p.QueryLen) return r;
        r.Q = Load(q, qBase + i * rowStep, p.HeadDim, lane);
        r.DO = Load(dout, qBase + i * rowStep, p.HeadDim, lane);
        r.Lse = lse[(long)bh * p.QueryLen + i];
        r.Delta = delta[(long)bh * p.QueryLen + i];
        return r;
    }

    /// <summary>Rows r0 … r0+31 of a (B, L, H, D) tensor at one (b, h) (element base + r·rowStep + t) into the tile,
    /// zeros past L and past D; the group's threads walk it row-major so consecutive threads read consecutive floats.</summary>
    static void Stage(ArrayView<float> tile, ArrayView<float> x, long baseIndex, long rowStep, int r0, int rows, Args p)
    {
        for (int e = Group.IdxX; e < Lanes * p.Width; e += Group.DimX)
        {
            int r = e / p.Width, t = e % p.Width;
            tile[r * p.Stride + t] = r0 + r < rows && t < p.HeadDim ? x[baseIndex + (r0 + r) * rowStep + t] : 0f;
        }
    }

    /// <summary>Four dot products or two, one per lane each.</summary>
    struct Four
    {
        public float A, B, C, D;
    }

    struct Two
    {
        public float A, B;
    }

    /// <summary>Σ_t x[t]·tile[rowStart + t] for the warp's rows x = a, b, c, e (spread over lanes) and this lane's staged
    /// row: each staged value is read from shared memory once for all four rows.</summary>
    static Four Dot4(Vec8 a, Vec8 b, Vec8 c, Vec8 e, ArrayView<float> tile, int rowStart, int d)
    {
        var s = new Four();
        s = Chunk4(s, a.C0, b.C0, c.C0, e.C0, tile, rowStart, d);
        s = Chunk4(s, a.C1, b.C1, c.C1, e.C1, tile, rowStart + 32, d - 32);
        s = Chunk4(s, a.C2, b.C2, c.C2, e.C2, tile, rowStart + 64, d - 64);
        s = Chunk4(s, a.C3, b.C3, c.C3, e.C3, tile, rowStart + 96, d - 96);
        s = Chunk4(s, a.C4, b.C4, c.C4, e.C4, tile, rowStart + 128, d - 128);
        s = Chunk4(s, a.C5, b.C5, c.C5, e.C5, tile, rowStart + 160, d - 160);
        s = Chunk4(s, a.C6, b.C6, c.C6, e.C6, tile, rowStart + 192, d - 192);
        return Chunk4(s, a.C7, b.C7, c.C7, e.C7, tile, rowStart + 224, d - 224);
    }

    /// <summary>One 32-element chunk of Dot4: lane t's chunk values broadcast by shuffle, for t < min(n, 32); n is the
    /// same on every lane, so the shuffles stay full.</summary>
    static Four Chunk4(Four s, float a, float b, float c, float e, ArrayView<float> tile, int start, int n)
    {
        for (int t = 0; t < XMath.Min(n, Lanes); t++)
        {
            float x = tile[start + t];
            s.A += Warp.Shuffle(a, t) * x;
            s.B += Warp.Shuffle(b, t) * x;
            s.C += Warp.Shuffle(c, t) * x;
            s.D += Warp.Shuffle(e, t) * x;
        }
        return s;
    }

    /// <summary>Dot4 for two rows.</summary>
    static Two Dot2(Vec8 a, Vec8 b, ArrayView<float> tile, int rowStart, int d)
    {
        var s = new Two();
        s = Chunk2(s, a.C0, b.C0, tile, rowStart, d);
        s = Chunk2(s, a.C1, b.C1, tile, rowStart + 32, d - 32);
        s = Chunk2(s, a.C2, b.C2, tile, rowStart + 64, d - 64);
        s = Chunk2(s, a.C3, b.C3, tile, rowStart + 96, d - 96);
        s = Chunk2(s, a.C4, b.C4, tile, rowStart + 128, d - 128);
        s = Chunk2(s, a.C5, b.C5, tile, rowStart + 160, d - 160);
        s = Chunk2(s, a.C6, b.C6, tile, rowStart + 192, d - 192);
        return Chunk2(s, a.C7, b.C7, tile, rowStart + 224, d - 224);
    }

    static Two Chunk2(Two s, float a, float b, ArrayView<float> tile, int start, int n)
    {
        for (int t = 0; t < XMath.Min(n, Lanes); t++)
        {
            float x = tile[start + t];
            s.A += Warp.Shuffle(a, t) * x;
            s.B += Warp.Shuffle(b, t) * x;
        }
        return s;
    }

    struct Vec8x2
    {
        public Vec8 A, B;
    }

    /// <summary>(a, b) + Σ_{j < count} (wa_j, wb_j)·(staged row j), the weights being lane j's: each staged value is read
    /// from shared memory once for both rows.</summary>
    static Vec8x2 Accumulate2(Vec8 a, Vec8 b, float wa, float wb, ArrayView<float> tile, int count, Args p, int lane)
    {
        var r = new Vec8x2 { A = a, B = b };
        for (int j = 0; j < count; j++)
        {
            float ja = Warp.Shuffle(wa, j), jb = Warp.Shuffle(wb, j);
            int at = j * p.Stride + lane, d = p.HeadDim;
            float x0 = tile[at];
            r.A.C0 += ja * x0; r.B.C0 += jb * x0;
            if (d > 32)
            {
                float x = tile[at + 32];
                r.A.C1 += ja * x; r.B.C1 += jb * x;
            }
            if (d > 64)
            {
                float x = tile[at + 64];
                r.A.C2 += ja * x; r.B.C2 += jb * x;
            }
            if (d > 96)
            {
                float x = tile[at + 96];
                r.A.C3 += ja * x; r.B.C3 += jb * x;
            }
            if (d > 128)
            {
                float x = tile[at + 128];
                r.A.C4 += ja * x; r.B.C4 += jb * x;
            }
            if (d > 160)
            {
                float x = tile[at + 160];
                r.A.C5 += ja * x; r.B.C5 += jb * x;
            }
            if (d > 192)
            {
                float x = tile[at + 192];
                r.A.C6 += ja * x; r.B.C6 += jb * x;
            }
            if (d > 224)
            {
                float x = tile[at + 224];
                r.A.C7 += ja * x; r.B.C7 += jb * x;
            }
        }
        return r;
    }

    struct Vec8x4
    {
        public Vec8 A, B, C, D;
    }

    /// <summary>Accumulate2 for four rows.</summary>
    static Vec8x4 Accumulate4(Vec8 a, Vec8 b, Vec8 c, Vec8 e, float wa, float wb, float wc, float we, ArrayView<float> tile,
        int count, Args p, int lane)
    {
        var r = new Vec8x4 { A = a, B = b, C = c, D = e };
        for (int j = 0; j < count; j++)
        {
            float ja = Warp.Shuffle(wa, j), jb = Warp.Shuffle(wb, j), jc = Warp.Shuffle(wc, j), je = Warp.Shuffle(we, j);
            int at = j * p.Stride + lane, d = p.HeadDim;
            float x0 = tile[at];
            r.A.C0 += ja * x0; r.B.C0 += jb * x0; r.C.C0 += jc * x0; r.D.C0 += je * x0;
            if (d > 32)
            {
                float x = tile[at + 32];
                r.A.C1 += ja * x; r.B.C1 += jb * x; r.C.C1 += jc * x; r.D.C1 += je * x;
            }
            if (d > 64)
            {
                float x = tile[at + 64];
                r.A.C2 += ja * x; r.B.C2 += jb * x; r.C.C2 += jc * x; r.D.C2 += je * x;
            }
            if (d > 96)
            {
                float x = tile[at + 96];
                r.A.C3 += ja * x; r.B.C3 += jb * x; r.C.C3 += jc * x; r.D.C3 += je * x;
            }
            if (d > 128)
            {
                float x = tile[at + 128];
                r.A.C4 += ja * x; r.B.C4 += jb * x; r.C.C4 += jc * x; r.D.C4 += je * x;
            }
            if (d > 160)
            {
                float x = tile[at + 160];
                r.A.C5 += ja * x; r.B.C5 += jb * x; r.C.C5 += jc * x; r.D.C5 += je * x;
            }
            if (d > 192)
            {
                float x = tile[at + 192];
                r.A.C6 += ja * x; r.B.C6 += jb * x; r.C.C6 += jc * x; r.D.C6 += je * x;
            }
            if (d > 224)
            {
                float x = tile[at + 224];
                r.A.C7 += ja * x; r.B.C7 += jb * x; r.C.C7 += jc * x; r.D.C7 += je * x;
            }
        }
        return r;
    }

    static Vec8 Scaled(Vec8 x, float s) => new()
    {
        C0 = x.C0 * s, C1 = x.C1 * s, C2 = x.C2 * s, C3 = x.C3 * s, C4 = x.C4 * s, C5 = x.C5 * s, C6 = x.C6 * s, C7 = x.C7 * s,
    };

    static Vec8 Load(ArrayView<float> x, long start, int d, int lane) => new()
    {
        C0 = At(x, start, lane, d), C1 = At(x, start, lane + 32, d), C2 = At(x, start, lane + 64, d), C3 = At(x, start, lane + 96, d),
        C4 = At(x, start, lane + 128, d), C5 = At(x, start, lane + 160, d), C6 = At(x, start, lane + 192, d),
        C7 = At(x, start, lane + 224, d),
    };

    static float At(ArrayView<float> x, long start, int t, int d) => t < d ? x[start + t] : 0f;

    static void Store(ArrayView<float> x, long start, Vec8 value, int d, int lane)
    {
        Put(x, start, lane, d, value.C0);
        Put(x, start, lane + 32, d, value.C1);
        Put(x, start, lane + 64, d, value.C2);
        Put(x, start, lane + 96, d, value.C3);
        Put(x, start, lane + 128, d, value.C4);
        Put(x, start, lane + 160, d, value.C5);
        Put(x, start, lane + 192, d, value.C6);
        Put(x, start, lane + 224, d, value.C7);
    }

    static void Put(ArrayView<float> x, long start, int t, int d, float value)
    {
        if (t < d) x[start + t] = value;
    }

    static float WarpMax(float x)
    {
        for (int offset = Lanes / 2; offset > 0; offset >>= 1) x = XMath.Max(x, Warp.ShuffleXor(x, offset));
        return x;
    }

    static float WarpSum(float x)
    {
        for (int offset = Lanes / 2; offset > 0; offset >>= 1) x += Warp.ShuffleXor(x, offset);
        return x;
    }
}
