// Flash attention on the CPU: per head, K/V packed into unit-stride panels, Vector512 FMA register tiles, online softmax,
// never the full Lq×Lk score matrix; the backward recomputes probabilities from lse, block by block.
using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DreamBooth.Kernels.Reference;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        AttentionReference.ValidateForward(o, lse, q, k, v, s);
        FlashAttention.Forward(F(o), F(lse), F(q), F(k), F(v), s);
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q,
        DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        AttentionReference.ValidateBackward(dq, dk, dv, dout, q, k, v, o, lse, s);
        FlashAttention.Backward(F(dq), F(dk), F(dv), F(dout), F(q), F(k), F(v), F(o), F(lse), s);
    }
}

/// <summary>
/// Layouts, per (batch, head), in scratch: Q rows prescaled by scale·log2e (scores come out in base-2 units, so the softmax
/// uses 2^x and lse = ln2·(max + log2 Σ)); K and V "transposed panels" [d][64 keys] for the score-like products (head dim
/// is the reduction, keys along the vector lanes); K, V, dO, Q rows padded to Dp = D rounded up to 16 for the
/// P·V-like products (keys or queries are the reduction, head dim along the lanes). Key counts pad to 16 and query
/// counts to 4 with zeros; padded scores are masked to −∞ (probability 0).
/// </summary>
file static unsafe class FlashAttention
{
    const int Panel = 80;       // keys per transposed panel: a 4-row × 5-vector score tile (77 text tokens fit one)
    const int ForwardRows = 64;  // queries per forward block: the lanes of 4 vectors
    const int ForwardKeys = 80;  // keys per forward block
    const int BackwardRows = 64;  // queries per backward block: the reduction length of dK and dV
    const int BackwardKeys = 160; // keys per backward block (a multiple of Panel): the reduction length of dQ
    const float Ln2 = 0.693147181f;

    static int Round(int x, int m) => (x + m - 1) / m * m;

    public static void Forward(float* o, float* lse, float* q, float* k, float* v, AttentionShape s)
    {
        int heads = s.Batch * s.Heads;
        int blocks = (s.QueryLen + ForwardRows - 1) / ForwardRows;
        // Enough tasks to keep every core busy; each task packs its head's K and V once, so keep tasks few and large.
        int chunks = Math.Min(blocks, Math.Max(1, (4 * Environment.ProcessorCount + heads - 1) / heads));
        int blocksPerChunk = (blocks + chunks - 1) / chunks;
        chunks = (blocks + blocksPerChunk - 1) / blocksPerChunk;
        void Body(int task)
        {
            int bh = task / chunks, chunk = task % chunks;
            int i0 = chunk * blocksPerChunk * ForwardRows, i1 = Math.Min(s.QueryLen, i0 + blocksPerChunk * ForwardRows);
            ForwardHead(o, lse, q, k, v, s, bh / s.Heads, bh % s.Heads, i0, i1);
        }
        if (s.Flops < 4e6) for (int t = 0; t < heads * chunks; t++) Body(t);
        else Parallel.For(0, heads * chunks, Body);
    }

    /// <summary>Queries [i0, i1) of head (b, h), transposed: per block of 64 queries, Sᵀ = K·Qᵀ puts the queries along the
    /// lanes, so the online softmax (running max m and sum l per query, Oᵀ rescaled by 2^(m_old − m_new) as the max grows)
    /// is lane-wise over key rows, and Oᵀ += Vᵀ·P needs no padding of the head dim.</summary>
    static void ForwardHead(float* o, float* lse, float* q, float* k, float* v, in AttentionShape s, int b, int h, int i0, int i1)
    {
        const int R = ForwardRows, N = R / 16;
        int d = s.HeadDim, d4 = Round(d, 4), rs = s.Heads * d;
        int keys = s.Causal ? Math.Min(s.KeyLen, i1) : s.KeyLen, k4 = Round(keys, 4);
        long scratch = (long)k4 * (d + d4) + R * (d + ForwardKeys + d4 + 3);
        float[] rented = ArrayPool<float>.Shared.Rent((int)scratch + 16);
        fixed (float* raw = rented)
        {
            float* kr = Align(raw), vr = kr + (long)k4 * d, qt = vr + (long)k4 * d4, st = qt + R * d;
            float* ot = st + R * ForwardKeys, m = ot + R * d4, l = m + R, corr = l + R;
            float* kh = k + ((long)b * s.KeyLen * s.Heads + h) * d, vh = v + ((long)b * s.KeyLen * s.Heads + h) * d;
            PackRows(kr, kh, rs, keys, k4, d, d, 1f);
            PackRows(vr, vh, rs, keys, k4, d, d4, 1f);
            float qscale = s.EffectiveScale * SoftmaxExp.Log2E;
            for (int r0 = i0; r0 < i1; r0 += R)
            {
                int rows = Math.Min(R, i1 - r0);
                float* qh = q + (((long)b * s.QueryLen + r0) * s.Heads + h) * d;
                Transpose(qt, R, qh, rs, R, d, rows, qscale);
                new Span<float>(ot, R * d4).Clear();
                new Span<float>(m, R).Fill(float.NegativeInfinity);
                new Span<float>(l, R).Clear();
                int kEnd = s.Causal ? Math.Min(s.KeyLen, r0 + rows) : s.KeyLen;
                for (int j0 = 0; j0 < kEnd; j0 += ForwardKeys)
                {
                    int w = Math.Min(ForwardKeys, kEnd - j0), w4 = Round(w, 4);
                    for (int j = 0; j < w4; j += 4) Tile4<W4>(st + j * R, R, kr + (long)(j0 + j) * d, d, 1, qt, R, d, accumulate: false);
                    // Padded keys, and under the causal mask keys past the query, get −∞.
                    for (int j = 0; j < w4; j++)
                    {
                        int visible = j >= w ? R : s.Causal ? j0 + j - r0 : 0; // lanes below this are masked
                        for (int c = 0; c < Math.Min(visible, R); c += 16)
                        {
                            var masked = Vector512.LessThan(Vector512<int>.Indices + Vector512.Create(c), Vector512.Create(visible));
                            Vector512.ConditionalSelect(masked.AsSingle(), Vector512.Create(float.NegativeInfinity), Vector512.Load(st + j * R + c))
                                .Store(st + j * R + c);
                        }
                    }
                    for (int c = 0; c < N; c++) OnlineSoftmax(st + 16 * c, R, w4, m + 16 * c, l + 16 * c, corr + 16 * c);
                    for (int c = 0; c < d4; c++)
                        for (int t = 0; t < R; t += 16) (Vector512.Load(ot + c * R + t) * Vector512.Load(corr + t)).Store(ot + c * R + t);
                    for (int c = 0; c < d4; c += 4) Accumulate(ot + c * R, R, R, vr + (long)j0 * d4 + c, 1, d4, st, R, w4);
                }
                for (int t = 0; t < R; t += 16) (Vector512<float>.One / Vector512.Load(l + t)).Store(corr + t);
                for (int c = 0; c < d; c++)
                    for (int t = 0; t < R; t += 16) (Vector512.Load(ot + c * R + t) * Vector512.Load(corr + t)).Store(ot + c * R + t);
                Transpose(o + (((long)b * s.QueryLen + r0) * s.Heads + h) * d, rs, ot, R, d, rows, d, 1f);
                for (int i = 0; i < rows; i++)
                    lse[((long)b * s.Heads + h) * s.QueryLen + r0 + i] = (m[i] + MathF.Log2(l[i])) * Ln2;
            }
        }
        ArrayPool<float>.Shared.Return(rented);
    }

    /// <summary>16 query lanes of a transposed score block (rows keys, given stride): raises the running max over the rows,
    /// turns the block into p = 2^(s − max) in place and updates the running sum; corr rescales the lanes' earlier output.</summary>
    static void OnlineSoftmax(float* block, int stride, int rows, float* max, float* sum, float* corr)
    {
        var mx = Vector512.Load(block);
        for (int j = 1; j < rows; j++) mx = Vector512.MaxNative(mx, Vector512.Load(block + j * stride));
        var old = Vector512.Load(max);
        var next = Vector512.MaxNative(mx, old);
        var c = SoftmaxExp.Exp2(old - next);
        Vector512<float> total = default;
        for (int j = 0; j < rows; j++)
        {
            var p = SoftmaxExp.Exp2(Vector512.Load(block + j * stride) - next);
            total += p;
            p.Store(block + j * stride);
        }
        (Vector512.Load(sum) * c + total).Store(sum);
        next.Store(max);
        c.Store(corr);
    }

    public static void Backward(float* dq, float* dk, float* dv, float* dout, float* q, float* k, float* v, float* o, float* lse,
        AttentionShape s)
    {
        int heads = s.Batch * s.Heads;
        // One task per head: it owns its dK, dV and dQ rows, so accumulation needs no reduction and has no races.
        void Body(int bh) => BackwardHead(dq, dk, dv, dout, q, k, v, o, lse, s, bh / s.Heads, bh % s.Heads);
        if (s.Flops < 2e6) for (int t = 0; t < heads; t++) Body(t);
        else Parallel.For(0, heads, Body);
    }

    /// <summary>Head (b, h). For each key block (outer) and query block (inner): recompute S and P = 2^(S − lse·log2e),
    /// dP = dO·Vᵀ, dS = P∘(dP − Δ); then dVᵀ += dOᵀ·P, dKᵀ += Qᵀ·dS (keys along the lanes, so the head dim needs no
    /// padding), dQ += dS·K, the scale factors applied on the way out.</summary>
    static void BackwardHead(float* dq, float* dk, float* dv, float* dout, float* q, float* k, float* v, float* o, float* lse,
        in AttentionShape s, int b, int h)
    {
        int d = s.HeadDim, dp = Round(d, 16), rs = s.Heads * d, lq = s.QueryLen, lk = s.KeyLen;
        int q4 = Round(lq, 4), kp = Round(lk, 16), d4 = Round(d, 4);
        long scratch = 3L * q4 * dp + 2L * q4 + 2L * d * kp + (long)kp * dp + 2 * BackwardRows * BackwardKeys + 2 * d4 * BackwardKeys;
        float[] rented = ArrayPool<float>.Shared.Rent((int)scratch + 16);
        fixed (float* raw = rented)
        {
            float* qs = Align(raw), dos = qs + (long)q4 * dp, dqa = dos + (long)q4 * dp, lse2 = dqa + (long)q4 * dp, delta = lse2 + q4;
            float* kt = delta + q4, vt = kt + (long)d * kp, kr = vt + (long)d * kp, sc = kr + (long)kp * dp;
            float* dsc = sc + BackwardRows * BackwardKeys, dkt = dsc + BackwardRows * BackwardKeys, dvt = dkt + d4 * BackwardKeys;
            long qOff = ((long)b * lq * s.Heads + h) * d, kOff = ((long)b * lk * s.Heads + h) * d;
            float scale = s.EffectiveScale;
            PackPanels(kt, k + kOff, rs, lk, kp, d);
            PackPanels(vt, v + kOff, rs, lk, kp, d);
            PackRows(kr, k + kOff, rs, lk, kp, d, dp, 1f);
            new Span<float>(dqa, q4 * dp).Clear();
            // One pass over the strided Q, dO and O rows (memory bound for long sequences): pack Q and dO, Δ = dO·O.
            float qscale = scale * SoftmaxExp.Log2E;
            for (int i = 0; i < q4; i++)
            {
                long at = qOff + (long)i * rs;
                PackRows(qs + (long)i * dp, q + at, rs, i < lq ? 1 : 0, 1, d, dp, qscale);
                PackRows(dos + (long)i * dp, dout + at, rs, i < lq ? 1 : 0, 1, d, dp, 1f);
                // Padded query rows get lse = +∞, so their probabilities are exactly 0.
                lse2[i] = i < lq ? lse[((long)b * s.Heads + h) * lq + i] * SoftmaxExp.Log2E : float.PositiveInfinity;
                delta[i] = i < lq ? Dot(dos + (long)i * dp, o + at, d) : 0;
            }
            for (int j0 = 0; j0 < lk; j0 += BackwardKeys)
            {
                int w = Math.Min(BackwardKeys, lk - j0), wp = Round(w, 16);
                new Span<float>(dkt, d4 * BackwardKeys).Clear();
                new Span<float>(dvt, d4 * BackwardKeys).Clear();
                for (int r0 = s.Causal ? j0 / BackwardRows * BackwardRows : 0; r0 < lq; r0 += BackwardRows)
                {
                    int rows4 = Round(Math.Min(BackwardRows, lq - r0), 4);
                    for (int r = 0; r < rows4; r += 4)
                    {
                        Scores(sc + r * BackwardKeys, BackwardKeys, qs + (long)(r0 + r) * dp, dp, kt, kp, j0, wp, d);
                        Scores(dsc + r * BackwardKeys, BackwardKeys, dos + (long)(r0 + r) * dp, dp, vt, kp, j0, wp, d);
                    }
                    for (int r = 0; r < rows4; r++)
                    {
                        int valid = s.Causal ? Math.Min(w, r0 + r + 1 - j0) : w;
                        Probabilities(sc + r * BackwardKeys, dsc + r * BackwardKeys, valid, wp, lse2[r0 + r], delta[r0 + r]);
                    }
                    for (int c = 0; c < d4; c += 4)
                        Accumulate(dvt + c * BackwardKeys, BackwardKeys, wp, dos + (long)r0 * dp + c, 1, dp, sc, BackwardKeys, rows4);
                    for (int c = 0; c < d4; c += 4)
                        Accumulate(dkt + c * BackwardKeys, BackwardKeys, wp, qs + (long)r0 * dp + c, 1, dp, dsc, BackwardKeys, rows4);
                    for (int r = 0; r < rows4; r += 4)
                        Accumulate(dqa + (long)(r0 + r) * dp, dp, dp, dsc + r * BackwardKeys, BackwardKeys, 1, kr + (long)j0 * dp, dp, wp);
                }
                // dK = scale·dSᵀ·Q and qs holds Q·scale·log2e, so dK = ln2·dSᵀ·qs.
                Transpose(dk + kOff + (long)j0 * rs, rs, dkt, BackwardKeys, d, w, d, Ln2);
                Transpose(dv + kOff + (long)j0 * rs, rs, dvt, BackwardKeys, d, w, d, 1f);
            }
            for (int i = 0; i < lq; i++) ScaleRow(dq + qOff + (long)i * rs, dqa + (long)i * dp, scale, d);
        }
        ArrayPool<float>.Shared.Return(rented);
    }

    /// <summary>In place: p = 2^(s − lse2) for columns below valid, else 0; ds = p·(dp − Δ).</summary>
    static void Probabilities(float* s, float* dpRow, int valid, int width, float lse2, float delta)
    {
        var vl = Vector512.Create(lse2);
        var vd = Vector512.Create(delta);
        for (int t = 0; t < width; t += 16)
        {
            var p = SoftmaxExp.Exp2(Vector512.Load(s + t) - vl);
            if (t + 16 > valid)
                p = Vector512.ConditionalSelect(Vector512.LessThan(Vector512.Create(t) + Lanes, Vector512.Create(valid)).AsSingle(), p, default);
            p.Store(s + t);
            (p * (Vector512.Load(dpRow + t) - vd)).Store(dpRow + t);
        }
    }

    /// <summary>dst[c][r] = src[r][c]·scale for r below rows (zero for r in [valid, rows)) and c below cols: 16×16 blocks in
    /// registers with AVX-512, the edges one element at a time.</summary>
    static void Transpose(float* dst, long dstStride, float* src, long srcStride, int rows, int cols, int valid, float scale)
    {
        int fullRows = Avx512F.IsSupported ? valid / 16 * 16 : 0, fullCols = Avx512F.IsSupported ? cols / 16 * 16 : 0;
        for (int r = 0; r < fullRows; r += 16)
            for (int c = 0; c < fullCols; c += 16) Transpose16(dst + c * dstStride + r, dstStride, src + r * srcStride + c, srcStride, scale);
        for (int c = 0; c < cols; c++)
            for (int r = c < fullCols ? fullRows : 0; r < rows; r++) dst[c * dstStride + r] = r < valid ? src[r * srcStride + c] * scale : 0;
    }

    static void Transpose16(float* dst, long dstStride, float* src, long srcStride, float scale)
    {
        var vs = Vector512.Create(scale);
        var r0 = Vector512.Load(src + 0 * srcStride) * vs;
        var r1 = Vector512.Load(src + 1 * srcStride) * vs;
        var r2 = Vector512.Load(src + 2 * srcStride) * vs;
        var r3 = Vector512.Load(src + 3 * srcStride) * vs;
        var r4 = Vector512.Load(src + 4 * srcStride) * vs;
        var r5 = Vector512.Load(src + 5 * srcStride) * vs;
        var r6 = Vector512.Load(src + 6 * srcStride) * vs;
        var r7 = Vector512.Load(src + 7 * srcStride) * vs;
        var r8 = Vector512.Load(src + 8 * srcStride) * vs;
        var r9 = Vector512.Load(src + 9 * srcStride) * vs;
        var r10 = Vector512.Load(src + 10 * srcStride) * vs;
        var r11 = Vector512.Load(src + 11 * srcStride) * vs;
        var r12 = Vector512.Load(src + 12 * srcStride) * vs;
        var r13 = Vector512.Load(src + 13 * srcStride) * vs;
        var r14 = Vector512.Load(src + 14 * srcStride) * vs;
        var r15 = Vector512.Load(src + 15 * srcStride) * vs;
        var t0 = Avx512F.UnpackLow(r0, r1);
        var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3);
        var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5);
        var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7);
        var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9);
        var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11);
        var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13);
        var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15);
        var t15 = Avx512F.UnpackHigh(r14, r15);
        r0 = Avx512F.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r1 = Avx512F.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r2 = Avx512F.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r3 = Avx512F.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r4 = Avx512F.UnpackLow(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r5 = Avx512F.UnpackHigh(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r6 = Avx512F.UnpackLow(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r7 = Avx512F.UnpackHigh(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r8 = Avx512F.UnpackLow(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r9 = Avx512F.UnpackHigh(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r10 = Avx512F.UnpackLow(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r11 = Avx512F.UnpackHigh(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r12 = Avx512F.UnpackLow(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r13 = Avx512F.UnpackHigh(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r14 = Avx512F.UnpackLow(t13.AsDouble(), t15.AsDouble()).AsSingle();
        r15 = Avx512F.UnpackHigh(t13.AsDouble(), t15.AsDouble()).AsSingle();
        t0 = Avx512F.Shuffle4x128(r0, r4, 0x88);
        t1 = Avx512F.Shuffle4x128(r1, r5, 0x88);
        t2 = Avx512F.Shuffle4x128(r2, r6, 0x88);
        t3 = Avx512F.Shuffle4x128(r3, r7, 0x88);
        t4 = Avx512F.Shuffle4x128(r0, r4, 0xdd);
        t5 = Avx512F.Shuffle4x128(r1, r5, 0xdd);
        t6 = Avx512F.Shuffle4x128(r2, r6, 0xdd);
        t7 = Avx512F.Shuffle4x128(r3, r7, 0xdd);
        t8 = Avx512F.Shuffle4x128(r8, r12, 0x88);
        t9 = Avx512F.Shuffle4x128(r9, r13, 0x88);
        t10 = Avx512F.Shuffle4x128(r10, r14, 0x88);
        t11 = Avx512F.Shuffle4x128(r11, r15, 0x88);
        t12 = Avx512F.Shuffle4x128(r8, r12, 0xdd);
        t13 = Avx512F.Shuffle4x128(r9, r13, 0xdd);
        t14 = Avx512F.Shuffle4x128(r10, r14, 0xdd);
        t15 = Avx512F.Shuffle4x128(r11, r15, 0xdd);
        Avx512F.Shuffle4x128(t0, t8, 0x88).Store(dst + 0 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0x88).Store(dst + 1 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0x88).Store(dst + 2 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0x88).Store(dst + 3 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0x88).Store(dst + 4 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0x88).Store(dst + 5 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0x88).Store(dst + 6 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0x88).Store(dst + 7 * dstStride);
        Avx512F.Shuffle4x128(t0, t8, 0xdd).Store(dst + 8 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0xdd).Store(dst + 9 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0xdd).Store(dst + 10 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0xdd).Store(dst + 11 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0xdd).Store(dst + 12 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0xdd).Store(dst + 13 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0xdd).Store(dst + 14 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0xdd).Store(dst + 15 * dstStride);
    }

    static float Dot(float* a, float* b, int d)
    {
        Vector512<float> acc = default;
        int t = 0;
        for (; t + 16 <= d; t += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + t), Vector512.Load(b + t), acc);
        float sum = Vector512.Sum(acc);
        for (; t < d; t++) sum += a[t] * b[t];
        return sum;
    }

    /// <summary>dst[0..d) = src[0..d)·scale.</summary>
    static void ScaleRow(float* dst, float* src, float scale, int d)
    {
        int t = 0;
        for (; t + 16 <= d; t += 16) (Vector512.Load(src + t) * scale).Store(dst + t);
        for (; t < d; t++) dst[t] = src[t] * scale;
    }

    static readonly Vector512<int> Lanes = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    static float* Align(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    /// <summary>dst[i][0..width) = src row i (stride rs) · scale for i below count, zeros elsewhere up to padded rows.</summary>
    static void PackRows(float* dst, float* src, int rs, int count, int padded, int d, int width, float scale)
    {
        for (int i = 0; i < padded; i++)
        {
            float* row = dst + (long)i * width;
            int t = 0;
            if (i < count)
            {
                float* from = src + (long)i * rs;
                for (; t + 16 <= d; t += 16) (Vector512.Load(from + t) * scale).Store(row + t);
                for (; t < d; t++) row[t] = from[t] * scale;
            }
            for (; t < width; t++) row[t] = 0;
        }
    }

    /// <summary>Transposed panels: keys [j0, j0 + pw) with j0 a multiple of Panel and pw = min(Panel, padded − j0) are stored
    /// as [d][pw] at dst + j0·D, so a score tile reads keys with unit stride for each head-dim index.</summary>
    static void PackPanels(float* dst, float* src, int rs, int count, int padded, int d)
    {
        for (int j0 = 0; j0 < padded; j0 += Panel)
        {
            int pw = Math.Min(Panel, padded - j0);
            Transpose(dst + (long)j0 * d, pw, src + (long)j0 * rs, rs, pw, d, Math.Clamp(count - j0, 0, pw), 1f);
        }
    }

    /// <summary>out[r][0..width) = Σ_t a[r·aStride + t]·key[t] over t below d, for 4 rows and keys [j0, j0 + width) of the
    /// transposed panels (width a multiple of 16, j0 a multiple of Panel).</summary>
    static void Scores(float* output, int outStride, float* a, int aStride, float* panels, int padded, int j0, int width, int d)
    {
        for (int jj = 0; jj < width; jj += Panel)
        {
            int pw = Math.Min(Panel, padded - j0 - jj), n = Math.Min(Panel / 16, (width - jj) / 16);
            float* bt = panels + (long)(j0 + jj) * d;
            switch (n)
            {
                case 1: Tile4<W1>(output + jj, outStride, a, aStride, 1, bt, pw, d, accumulate: false); break;
                case 2: Tile4<W2>(output + jj, outStride, a, aStride, 1, bt, pw, d, accumulate: false); break;
                case 3: Tile4<W3>(output + jj, outStride, a, aStride, 1, bt, pw, d, accumulate: false); break;
                case 4: Tile4<W4>(output + jj, outStride, a, aStride, 1, bt, pw, d, accumulate: false); break;
                default: Tile4<W5>(output + jj, outStride, a, aStride, 1, bt, pw, d, accumulate: false); break;
            }
        }
    }

    /// <summary>out[r][c] += Σ_t a[r·ars + t·ats]·b[t·bStride + c], for 4 rows, columns
    /// below width (a multiple of 16), t below count. The columns go in chunks of up to 5 vectors so the accumulators stay
    /// in registers.</summary>
    static void Accumulate(float* output, int outStride, int width, float* a, int ars, int ats, float* b, int bStride,
        int count)
    {
        int vectors = width / 16, chunks = (vectors + 4) / 5;
        for (int ci = 0, c0 = 0; ci < chunks; ci++)
        {
            int n = vectors / chunks + (ci < vectors % chunks ? 1 : 0);
            float* oc = output + c0 * 16, bc = b + c0 * 16;
            switch (n)
            {
                case 1: Tile4<W1>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate: true); break;
                case 2: Tile4<W2>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate: true); break;
                case 3: Tile4<W3>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate: true); break;
                case 4: Tile4<W4>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate: true); break;
                default: Tile4<W5>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate: true); break;
            }
            c0 += n;
        }
    }

    /// <summary>Register tile of 4 rows × N vectors: out[r][v] (+)= Σ_t a[r·ars + t·ats]·b[t·bStride + 16v]; the sum is
    /// added onto out when accumulating, else it replaces out.</summary>
    static void Tile4<TW>(float* output, int outStride, float* a, int ars, int ats, float* b, int bStride, int count, bool accumulate)
        where TW : struct, IWidth
    {
        float* o0 = output, o1 = output + outStride, o2 = output + 2 * outStride, o3 = output + 3 * outStride;
        var c00 = accumulate ? Vector512.Load(o0) : default;
        var c01 = accumulate && TW.N > 1 ? Vector512.Load(o0 + 16) : default;
        var c02 = accumulate && TW.N > 2 ? Vector512.Load(o0 + 32) : default;
        var c03 = accumulate && TW.N > 3 ? Vector512.Load(o0 + 48) : default;
        var c04 = accumulate && TW.N > 4 ? Vector512.Load(o0 + 64) : default;
        var c10 = accumulate ? Vector512.Load(o1) : default;
        var c11 = accumulate && TW.N > 1 ? Vector512.Load(o1 + 16) : default;
        var c12 = accumulate && TW.N > 2 ? Vector512.Load(o1 + 32) : default;
        var c13 = accumulate && TW.N > 3 ? Vector512.Load(o1 + 48) : default;
        var c14 = accumulate && TW.N > 4 ? Vector512.Load(o1 + 64) : default;
        var c20 = accumulate ? Vector512.Load(o2) : default;
        var c21 = accumulate && TW.N > 1 ? Vector512.Load(o2 + 16) : default;
        var c22 = accumulate && TW.N > 2 ? Vector512.Load(o2 + 32) : default;
        var c23 = accumulate && TW.N > 3 ? Vector512.Load(o2 + 48) : default;
        var c24 = accumulate && TW.N > 4 ? Vector512.Load(o2 + 64) : default;
        var c30 = accumulate ? Vector512.Load(o3) : default;
        var c31 = accumulate && TW.N > 1 ? Vector512.Load(o3 + 16) : default;
        var c32 = accumulate && TW.N > 2 ? Vector512.Load(o3 + 32) : default;
        var c33 = accumulate && TW.N > 3 ? Vector512.Load(o3 + 48) : default;
        var c34 = accumulate && TW.N > 4 ? Vector512.Load(o3 + 64) : default;
        float* a0 = a, a1 = a + ars, a2 = a + 2 * ars, a3 = a + 3 * ars;
        for (int t = 0; t < count; t++)
        {
            float* row = b + (long)t * bStride;
            long at = (long)t * ats;
            var b0 = Vector512.Load(row);
            var b1 = TW.N > 1 ? Vector512.Load(row + 16) : default;
            var b2 = TW.N > 2 ? Vector512.Load(row + 32) : default;
            var b3 = TW.N > 3 ? Vector512.Load(row + 48) : default;
            var b4 = TW.N > 4 ? Vector512.Load(row + 64) : default;
            Vector512<float> x;
            x = Vector512.Create(a0[at]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            if (TW.N > 1) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            if (TW.N > 2) c02 = Vector512.FusedMultiplyAdd(x, b2, c02);
            if (TW.N > 3) c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            if (TW.N > 4) c04 = Vector512.FusedMultiplyAdd(x, b4, c04);
            x = Vector512.Create(a1[at]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            if (TW.N > 1) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            if (TW.N > 2) c12 = Vector512.FusedMultiplyAdd(x, b2, c12);
            if (TW.N > 3) c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            if (TW.N > 4) c14 = Vector512.FusedMultiplyAdd(x, b4, c14);
            x = Vector512.Create(a2[at]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            if (TW.N > 1) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            if (TW.N > 2) c22 = Vector512.FusedMultiplyAdd(x, b2, c22);
            if (TW.N > 3) c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            if (TW.N > 4) c24 = Vector512.FusedMultiplyAdd(x, b4, c24);
            x = Vector512.Create(a3[at]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            if (TW.N > 1) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            if (TW.N > 2) c32 = Vector512.FusedMultiplyAdd(x, b2, c32);
            if (TW.N > 3) c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
            if (TW.N > 4) c34 = Vector512.FusedMultiplyAdd(x, b4, c34);
        }
        Store<TW>(o0, c00, c01, c02, c03, c04);
        Store<TW>(o1, c10, c11, c12, c13, c14);
        Store<TW>(o2, c20, c21, c22, c23, c24);
        Store<TW>(o3, c30, c31, c32, c33, c34);
    }

    static void Store<TW>(float* p, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, Vector512<float> v4)
        where TW : struct, IWidth
    {
        v0.Store(p);
        if (TW.N > 1) v1.Store(p + 16);
        if (TW.N > 2) v2.Store(p + 32);
        if (TW.N > 3) v3.Store(p + 48);
        if (TW.N > 4) v4.Store(p + 64);
    }
}

/// <summary>Vectors per tile row, a compile-time constant to each instantiation so unused accumulators vanish.</summary>
file interface IWidth { static abstract int N { get; } }
file struct W1 : IWidth { public static int N => 1; }
file struct W2 : IWidth { public static int N => 2; }
file struct W3 : IWidth { public static int N => 3; }
file struct W4 : IWidth { public static int N => 4; }
file struct W5 : IWidth { public static int N => 5; }
