// Flash attention on the CPU: per head, K/V packed into unit-stride panels, FMA register tiles (Vector512 or Vector256),
// online softmax, never the full Lq×Lk score matrix; the backward recomputes probabilities from lse, block by block.
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        s.ValidateForward(o, lse, q, k, v);
        if (UseVector512) FlashAttention<V512>.Forward(F(o), F(lse), F(q), F(k), F(v), s);
        else FlashAttention<V256>.Forward(F(o), F(lse), F(q), F(k), F(v), s);
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q,
        DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        s.ValidateBackward(dq, dk, dv, dout, q, k, v, o, lse);
        if (UseVector512) FlashAttention<V512>.Backward(F(dq), F(dk), F(dv), F(dout), F(q), F(k), F(v), F(o), F(lse), s);
        else FlashAttention<V256>.Backward(F(dq), F(dk), F(dv), F(dout), F(q), F(k), F(v), F(o), F(lse), s);
    }
}

/// <summary>
/// Layouts, per (batch, head), in scratch: Q rows prescaled by scale·log2e (scores come out in base-2 units, so the softmax
/// uses 2^x and lse = ln2·(max + log2 Σ)); K and V "transposed panels" [d][64 keys] for the score-like products (head dim
/// is the reduction, keys along the vector lanes); K, V, dO, Q rows padded to Dp = D rounded up to 16 for the
/// P·V-like products (keys or queries are the reduction, head dim along the lanes). Key counts pad to 16 and query
/// counts to 4 with zeros; padded scores are masked to −∞ (probability 0). TV is the vector (16 or 8 lanes); the layouts
/// are the same for both.
/// </summary>
file static unsafe class FlashAttention<TV> where TV : struct, IVec<TV>
{
    const int Panel = 80;       // keys per transposed panel: a 4-row × 5-vector score tile (77 text tokens fit one)
    const int ForwardRows = 64;  // queries per forward block: the lanes of 4 (or 8) vectors
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
        else Cores.For(0, heads * chunks, Body);
    }

    /// <summary>Queries [i0, i1) of head (b, h), transposed: per block of 64 queries, Sᵀ = K·Qᵀ puts the queries along the
    /// lanes, so the online softmax (running max m and sum l per query, Oᵀ rescaled by 2^(m_old − m_new) as the max grows)
    /// is lane-wise over key rows, and Oᵀ += Vᵀ·P needs no padding of the head dim.</summary>
    static void ForwardHead(float* o, float* lse, float* q, float* k, float* v, in AttentionShape s, int b, int h, int i0, int i1)
    {
        const int R = ForwardRows;
        int lanes = TV.Count;
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
                    Accumulate(st, R, R, kr + (long)j0 * d, d, 1, qt, R, d, accumulate: false, groups: w4 / 4);
                    // Padded keys, and under the causal mask keys past the query, get −∞ (unmasked, keys below w are all seen).
                    for (int j = s.Causal ? 0 : w; j < w4; j++)
                    {
                        int visible = j >= w ? R : s.Causal ? j0 + j - r0 : 0; // lanes below this are masked
                        for (int c = 0; c < Math.Min(visible, R); c += lanes)
                            TV.Store(TV.SelectBelow(c, visible, TV.Create(float.NegativeInfinity), TV.Load(st + j * R + c)), st + j * R + c);
                    }
                    for (int c = 0; c < R; c += lanes) OnlineSoftmax(st + c, R, w4, m + c, l + c, corr + c);
                    for (int c = 0; c < d4; c++)
                        for (int t = 0; t < R; t += lanes) TV.Store(TV.Load(ot + c * R + t) * TV.Load(corr + t), ot + c * R + t);
                    for (int c = 0; c < d4; c += 4) Accumulate(ot + c * R, R, R, vr + (long)j0 * d4 + c, 1, d4, st, R, w4);
                }
                for (int t = 0; t < R; t += lanes) TV.Store(TV.Create(1f) / TV.Load(l + t), corr + t);
                for (int c = 0; c < d; c++)
                    for (int t = 0; t < R; t += lanes) TV.Store(TV.Load(ot + c * R + t) * TV.Load(corr + t), ot + c * R + t);
                Transpose(o + (((long)b * s.QueryLen + r0) * s.Heads + h) * d, rs, ot, R, d, rows, d, 1f);
                for (int i = 0; i < rows; i++)
                    lse[((long)b * s.Heads + h) * s.QueryLen + r0 + i] = (m[i] + MathF.Log2(l[i])) * Ln2;
            }
        }
        ArrayPool<float>.Shared.Return(rented);
    }

    /// <summary>The query lanes of one vector of a transposed score block (rows keys, given stride): raises the running max over the rows,
    /// turns the block into p = 2^(s − max) in place and updates the running sum; corr rescales the lanes' earlier output.</summary>
    static void OnlineSoftmax(float* block, int stride, int rows, float* max, float* sum, float* corr)
    {
        var mx = TV.Load(block);
        for (int j = 1; j < rows; j++) mx = TV.Max(mx, TV.Load(block + j * stride));
        var old = TV.Load(max);
        var next = TV.Max(mx, old);
        var c = TV.Exp2(old - next);
        var total = TV.Zero;
        for (int j = 0; j < rows; j++)
        {
            var p = TV.Exp2(TV.Load(block + j * stride) - next);
            total += p;
            TV.Store(p, block + j * stride);
        }
        TV.Store(TV.Fma(TV.Load(sum), c, total), sum);
        TV.Store(next, max);
        TV.Store(c, corr);
    }

    public static void Backward(float* dq, float* dk, float* dv, float* dout, float* q, float* k, float* v, float* o, float* lse,
        AttentionShape s)
    {
        int heads = s.Batch * s.Heads;
        // One task per head: it owns its dK, dV and dQ rows, so accumulation needs no reduction and has no races.
        void Body(int bh) => BackwardHead(dq, dk, dv, dout, q, k, v, o, lse, s, bh / s.Heads, bh % s.Heads);
        if (s.Flops < 2e6) for (int t = 0; t < heads; t++) Body(t);
        else Cores.For(0, heads, Body);
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
                    Scores(sc, BackwardKeys, qs + (long)r0 * dp, dp, kt, kp, j0, wp, d, rows4 / 4);
                    Scores(dsc, BackwardKeys, dos + (long)r0 * dp, dp, vt, kp, j0, wp, d, rows4 / 4);
                    for (int r = 0; r < rows4; r++)
                    {
                        int valid = s.Causal ? Math.Min(w, r0 + r + 1 - j0) : w;
                        Probabilities(sc + r * BackwardKeys, dsc + r * BackwardKeys, valid, wp, lse2[r0 + r], delta[r0 + r]);
                    }
                    for (int c = 0; c < d4; c += 4)
                        Accumulate(dvt + c * BackwardKeys, BackwardKeys, wp, dos + (long)r0 * dp + c, 1, dp, sc, BackwardKeys, rows4);
                    for (int c = 0; c < d4; c += 4)
                        Accumulate(dkt + c * BackwardKeys, BackwardKeys, wp, qs + (long)r0 * dp + c, 1, dp, dsc, BackwardKeys, rows4);
                    int rq = 0;
                    if (dp == TV.Count)   // one vector wide: 8 rows at a time (Tile8)
                        for (; rq + 8 <= rows4; rq += 8)
                            Tile8(dqa + (long)(r0 + rq) * dp, dp, dsc + rq * BackwardKeys, BackwardKeys, kr + (long)j0 * dp, dp, wp);
                    for (; rq < rows4; rq += 4)
                        Accumulate(dqa + (long)(r0 + rq) * dp, dp, dp, dsc + rq * BackwardKeys, BackwardKeys, 1, kr + (long)j0 * dp, dp, wp);
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
        var vl = TV.Create(lse2);
        var vd = TV.Create(delta);
        for (int t = 0; t < width; t += TV.Count)
        {
            var p = TV.Exp2(TV.Load(s + t) - vl);
            if (t + TV.Count > valid) p = TV.SelectBelow(t, valid, p, TV.Zero);
            TV.Store(p, s + t);
            TV.Store(p * (TV.Load(dpRow + t) - vd), dpRow + t);
        }
    }

    /// <summary>dst[c][r] = src[r][c]·scale for r below rows (zero for r in [valid, rows)) and c below cols: blocks of
    /// lanes × lanes in registers (TV.TransposeBlock), the edges one element at a time.</summary>
    static void Transpose(float* dst, long dstStride, float* src, long srcStride, int rows, int cols, int valid, float scale)
    {
        int n = TV.Count, fullRows = TV.HasShuffles ? valid / n * n : 0, fullCols = TV.HasShuffles ? cols / n * n : 0;
        for (int r = 0; r < fullRows; r += n)
            for (int c = 0; c < fullCols; c += n) TV.TransposeBlock(dst + c * dstStride + r, dstStride, src + r * srcStride + c, srcStride, scale);
        for (int c = 0; c < cols; c++)
            for (int r = c < fullCols ? fullRows : 0; r < rows; r++) dst[c * dstStride + r] = r < valid ? src[r * srcStride + c] * scale : 0;
    }

    static float Dot(float* a, float* b, int d)
    {
        var acc = TV.Zero;
        int t = 0;
        for (; t + TV.Count <= d; t += TV.Count) acc = TV.Fma(TV.Load(a + t), TV.Load(b + t), acc);
        float sum = TV.Sum(acc);
        for (; t < d; t++) sum += a[t] * b[t];
        return sum;
    }

    /// <summary>dst[0..d) = src[0..d)·scale.</summary>
    static void ScaleRow(float* dst, float* src, float scale, int d)
    {
        int t = 0;
        for (; t + TV.Count <= d; t += TV.Count) TV.Store(TV.Load(src + t) * TV.Create(scale), dst + t);
        for (; t < d; t++) dst[t] = src[t] * scale;
    }

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
                for (; t + TV.Count <= d; t += TV.Count) TV.Store(TV.Load(from + t) * TV.Create(scale), row + t);
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

    /// <summary>out[r][0..width) = Σ_t a[r·aStride + t]·key[t] over t below d, for 4·groups rows and keys [j0, j0 + width)
    /// of the transposed panels (width a multiple of 16, j0 a multiple of Panel).</summary>
    static void Scores(float* output, int outStride, float* a, int aStride, float* panels, int padded, int j0, int width, int d, int groups)
    {
        for (int jj = 0; jj < width; jj += Panel)
        {
            int pw = Math.Min(Panel, padded - j0 - jj);
            Accumulate(output + jj, outStride, Math.Min(Panel, width - jj), a, aStride, 1, panels + (long)(j0 + jj) * d, pw, d,
                accumulate: false, groups);
        }
    }

    /// <summary>out[r][c] (+)= Σ_t a[r·ars + t·ats]·b[t·bStride + c], for 4·groups rows, columns below width (a multiple
    /// of the lanes), t below count: the sum is added onto out when accumulating, else it replaces out. The columns go
    /// in chunks of up to TV.MaxTile vectors, so the accumulators stay in registers.</summary>
    static void Accumulate(float* output, int outStride, int width, float* a, int ars, int ats, float* b, int bStride,
        int count, bool accumulate = true, int groups = 1)
    {
        int vectors = width / TV.Count, chunks = (vectors + TV.MaxTile - 1) / TV.MaxTile;
        for (int ci = 0, c0 = 0; ci < chunks; ci++)
        {
            int n = vectors / chunks + (ci < vectors % chunks ? 1 : 0);
            float* oc = output + c0 * TV.Count, bc = b + c0 * TV.Count;
            switch (n)
            {
                case 1: Tile4<W1>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate, groups); break;
                case 2: Tile4<W2>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate, groups); break;
                case 3: Tile4<W3>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate, groups); break;
                case 4: Tile4<W4>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate, groups); break;
                default: Tile4<W5>(oc, outStride, a, ars, ats, bc, bStride, count, accumulate, groups); break;
            }
            c0 += n;
        }
    }

    /// <summary>Register tiles of 4 rows × N vectors, for `groups` groups of 4 rows in turn (one call for a whole block of
    /// short products, such as scores over a 16-wide head): out[r][v] (+)= Σ_t a[r·ars + t·ats]·b[t·bStride + v·lanes].
    /// The bench UNet's heads ([4,4,1024,16], 1 core, Xeon, 2026-12-05), a call per 4 rows → per block, alternating:
    /// forward 12.5-12.9 → 12.2-12.7 ms; forward+backward 38.9-41.6 → 38.7-43.3, the same within the noise.</summary>
    static void Tile4<TW>(float* output, int outStride, float* a, int ars, int ats, float* b, int bStride, int count, bool accumulate,
        int groups) where TW : struct, IWidth
    {
        for (int g = 0; g < groups; g++, output += 4 * outStride, a += 4 * ars)
            Tile4<TW>(output, outStride, a, ars, ats, b, bStride, count, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile4<TW>(float* output, int outStride, float* a, int ars, int ats, float* b, int bStride, int count, bool accumulate)
        where TW : struct, IWidth
    {
        int n = TV.Count;
        float* o0 = output, o1 = output + outStride, o2 = output + 2 * outStride, o3 = output + 3 * outStride;
        var c00 = accumulate ? TV.Load(o0) : TV.Zero;
        var c01 = accumulate && TW.N > 1 ? TV.Load(o0 + n) : TV.Zero;
        var c02 = accumulate && TW.N > 2 ? TV.Load(o0 + 2 * n) : TV.Zero;
        var c03 = accumulate && TW.N > 3 ? TV.Load(o0 + 3 * n) : TV.Zero;
        var c04 = accumulate && TW.N > 4 ? TV.Load(o0 + 4 * n) : TV.Zero;
        var c10 = accumulate ? TV.Load(o1) : TV.Zero;
        var c11 = accumulate && TW.N > 1 ? TV.Load(o1 + n) : TV.Zero;
        var c12 = accumulate && TW.N > 2 ? TV.Load(o1 + 2 * n) : TV.Zero;
        var c13 = accumulate && TW.N > 3 ? TV.Load(o1 + 3 * n) : TV.Zero;
        var c14 = accumulate && TW.N > 4 ? TV.Load(o1 + 4 * n) : TV.Zero;
        var c20 = accumulate ? TV.Load(o2) : TV.Zero;
        var c21 = accumulate && TW.N > 1 ? TV.Load(o2 + n) : TV.Zero;
        var c22 = accumulate && TW.N > 2 ? TV.Load(o2 + 2 * n) : TV.Zero;
        var c23 = accumulate && TW.N > 3 ? TV.Load(o2 + 3 * n) : TV.Zero;
        var c24 = accumulate && TW.N > 4 ? TV.Load(o2 + 4 * n) : TV.Zero;
        var c30 = accumulate ? TV.Load(o3) : TV.Zero;
        var c31 = accumulate && TW.N > 1 ? TV.Load(o3 + n) : TV.Zero;
        var c32 = accumulate && TW.N > 2 ? TV.Load(o3 + 2 * n) : TV.Zero;
        var c33 = accumulate && TW.N > 3 ? TV.Load(o3 + 3 * n) : TV.Zero;
        var c34 = accumulate && TW.N > 4 ? TV.Load(o3 + 4 * n) : TV.Zero;
        float* a0 = a, a1 = a + ars, a2 = a + 2 * ars, a3 = a + 3 * ars;
        for (int t = 0; t < count; t++)
        {
            float* row = b + (long)t * bStride;
            long at = (long)t * ats;
            var b0 = TV.Load(row);
            var b1 = TW.N > 1 ? TV.Load(row + n) : TV.Zero;
            var b2 = TW.N > 2 ? TV.Load(row + 2 * n) : TV.Zero;
            var b3 = TW.N > 3 ? TV.Load(row + 3 * n) : TV.Zero;
            var b4 = TW.N > 4 ? TV.Load(row + 4 * n) : TV.Zero;
            var x = TV.Create(a0[at]);
            c00 = TV.Fma(x, b0, c00);
            if (TW.N > 1) c01 = TV.Fma(x, b1, c01);
            if (TW.N > 2) c02 = TV.Fma(x, b2, c02);
            if (TW.N > 3) c03 = TV.Fma(x, b3, c03);
            if (TW.N > 4) c04 = TV.Fma(x, b4, c04);
            x = TV.Create(a1[at]);
            c10 = TV.Fma(x, b0, c10);
            if (TW.N > 1) c11 = TV.Fma(x, b1, c11);
            if (TW.N > 2) c12 = TV.Fma(x, b2, c12);
            if (TW.N > 3) c13 = TV.Fma(x, b3, c13);
            if (TW.N > 4) c14 = TV.Fma(x, b4, c14);
            x = TV.Create(a2[at]);
            c20 = TV.Fma(x, b0, c20);
            if (TW.N > 1) c21 = TV.Fma(x, b1, c21);
            if (TW.N > 2) c22 = TV.Fma(x, b2, c22);
            if (TW.N > 3) c23 = TV.Fma(x, b3, c23);
            if (TW.N > 4) c24 = TV.Fma(x, b4, c24);
            x = TV.Create(a3[at]);
            c30 = TV.Fma(x, b0, c30);
            if (TW.N > 1) c31 = TV.Fma(x, b1, c31);
            if (TW.N > 2) c32 = TV.Fma(x, b2, c32);
            if (TW.N > 3) c33 = TV.Fma(x, b3, c33);
            if (TW.N > 4) c34 = TV.Fma(x, b4, c34);
        }
        Store<TW>(o0, c00, c01, c02, c03, c04);
        Store<TW>(o1, c10, c11, c12, c13, c14);
        Store<TW>(o2, c20, c21, c22, c23, c24);
        Store<TW>(o3, c30, c31, c32, c33, c34);
    }

    /// <summary>out[r][0..lanes) += Σ_t a[r·ars + t]·b[t·bStride] for 8 rows, one vector wide (dQ of a head as wide as the
    /// vector): 8 sums in flight, where Tile4's 4 wait on the FMA latency (4 cycles at 2 FMAs a cycle needs 8). The sums
    /// run in Tile4's order, so results are bit-identical. dQ of the bench UNet's 16-wide heads (1 core, Xeon, 2026-12-05):
    /// 3.1 % of the step under Tile4.</summary>
    static void Tile8(float* output, int outStride, float* a, int ars, float* b, int bStride, int count)
    {
        float* o = output;
        var c0 = TV.Load(o); var c1 = TV.Load(o + outStride); var c2 = TV.Load(o + 2 * outStride); var c3 = TV.Load(o + 3 * outStride);
        var c4 = TV.Load(o + 4 * outStride); var c5 = TV.Load(o + 5 * outStride); var c6 = TV.Load(o + 6 * outStride); var c7 = TV.Load(o + 7 * outStride);
        float* a0 = a, a1 = a + ars, a2 = a + 2 * ars, a3 = a + 3 * ars, a4 = a + 4 * ars, a5 = a + 5 * ars, a6 = a + 6 * ars, a7 = a + 7 * ars;
        for (int t = 0; t < count; t++)
        {
            var x = TV.Load(b + (long)t * bStride);
            var s = TV.Create(a0[t]); c0 = TV.Fma(s, x, c0);
            s = TV.Create(a1[t]); c1 = TV.Fma(s, x, c1);
            s = TV.Create(a2[t]); c2 = TV.Fma(s, x, c2);
            s = TV.Create(a3[t]); c3 = TV.Fma(s, x, c3);
            s = TV.Create(a4[t]); c4 = TV.Fma(s, x, c4);
            s = TV.Create(a5[t]); c5 = TV.Fma(s, x, c5);
            s = TV.Create(a6[t]); c6 = TV.Fma(s, x, c6);
            s = TV.Create(a7[t]); c7 = TV.Fma(s, x, c7);
        }
        TV.Store(c0, o); TV.Store(c1, o + outStride); TV.Store(c2, o + 2 * outStride); TV.Store(c3, o + 3 * outStride);
        TV.Store(c4, o + 4 * outStride); TV.Store(c5, o + 5 * outStride); TV.Store(c6, o + 6 * outStride); TV.Store(c7, o + 7 * outStride);
    }

    static void Store<TW>(float* p, TV v0, TV v1, TV v2, TV v3, TV v4) where TW : struct, IWidth
    {
        TV.Store(v0, p);
        if (TW.N > 1) TV.Store(v1, p + TV.Count);
        if (TW.N > 2) TV.Store(v2, p + 2 * TV.Count);
        if (TW.N > 3) TV.Store(v3, p + 3 * TV.Count);
        if (TW.N > 4) TV.Store(v4, p + 4 * TV.Count);
    }
}

/// <summary>Vectors per tile row, a compile-time constant to each instantiation so unused accumulators vanish.</summary>
file interface IWidth { static abstract int N { get; } }
file struct W1 : IWidth { public static int N => 1; }
file struct W2 : IWidth { public static int N => 2; }
file struct W3 : IWidth { public static int N => 3; }
file struct W4 : IWidth { public static int N => 4; }
file struct W5 : IWidth { public static int N => 5; }
