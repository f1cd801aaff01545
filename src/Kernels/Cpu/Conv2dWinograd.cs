// Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions: 36 GEMMs over transformed tiles, 4× fewer multiplies than direct.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

/// <summary>
/// Winograd's minimal filtering F(4×4, 3×3) (Lavin and Gray, 2015): each 6×6 input tile d and 3×3 filter g give a 4×4
/// output tile Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A. Summed over input channels, the element-wise product becomes, for each of
/// the 36 tile positions p, a matrix product M[p] (K, T) = U[p] (K, C) · V[p] (C, T) over the T tiles of the batch:
/// 36·K·C·T multiplies instead of 9·K·C·16·T for the direct form, 4× fewer. The products run on the blocked SGEMM.
/// The input and output transforms work on as many neighbouring tiles at once as TV has lanes (16 or 8, one tile per
/// lane): a row of the input is first split by x mod 4 ("phases"), so the tile at x = 4t reads phase s at t (s &lt; 4)
/// or phase s−4 at t+1.
/// Used for 3×3, stride 1, padding ≤ 2: the forward, (with turned filters) the gradient of the input, and the gradient of
/// the weights (the same products run backwards, see GradWeight).
/// </summary>
[SkipLocalsInit]
internal static unsafe class Winograd3x3<TV> where TV : unmanaged, IVec<TV>
{
    const int Tile = 4, Patch = 6, Positions = Patch * Patch;
    static int Lanes => TV.Count;

    internal static bool Applies(in ConvShape s) => s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.Pad <= 2 && TV.HasShuffles;

    /// <summary>y (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C, 3, 3), pad) + bias (K or null); y is overwritten. wide is
    /// the GEMM's width (CpuBackend.UseVector512), whatever the transforms' lanes.</summary>
    internal static void Forward(float* y, float* x, float* w, float* bias, int n, int c, int h, int wd, int k, int pad, bool wide)
    {
        int oh = h + 2 * pad - 2, ow = wd + 2 * pad - 2;
        var g = new Grid(n, (oh + Tile - 1) / Tile, (ow + Tile - 1) / Tile);
        var scratch = Scratch.Current;
        float* u = scratch.Get(Scratch.WinogradU, (long)Positions * k * c);        // (36, K, C)
        float* v = scratch.Get(Scratch.WinogradV, (long)Positions * c * g.Tiles);  // (36, C, T)
        float* m = scratch.Get(Scratch.WinogradM, (long)Positions * k * g.Tiles);  // (36, K, T)

        Cores.For(0, k, kk => TransformFilters(u + (long)kk * c, (long)k * c, w + (long)kk * c * 9, c));
        TransformInputs(v, x, n, c, h, wd, pad, g);
        Cores.For(0, Positions, p => GemmKernel.Sgemm(wide, k, g.Tiles, c, 1f, u + (long)p * k * c, c, false,
            v + (long)p * c * g.Tiles, g.Tiles, false, 0f, m + (long)p * k * g.Tiles, g.Tiles, parallel: false));
        Cores.For(0, n * k, plane => TransformOutput(y + (long)plane * oh * ow, m + (long)(plane % k) * g.Tiles, (long)k * g.Tiles,
            plane / k, oh, ow, g, bias == null ? 0f : bias[plane % k]));
    }

    /// <summary>dx (N, C, H, W) from dy (N, K, OH, OW): for stride 1 this is the forward convolution of dy with the filters
    /// turned 180° and their channel axes swapped, w'[c, k] = rot180(w[k, c]), padded 2 − pad.</summary>
    internal static void GradInput(float* dx, float* dy, float* w, int n, int c, int h, int wd, int k, int pad, bool wide)
    {
        float* turned = Scratch.Current.Get(Scratch.Columns, (long)c * k * 9);     // (C, K, 3, 3)
        Cores.For(0, c, cc =>
        {
            for (int kk = 0; kk < k; kk++)
                for (int i = 0; i < 9; i++) turned[((long)cc * k + kk) * 9 + i] = w[((long)kk * c + cc) * 9 + 8 - i];
        });
        Forward(dx, dy, turned, null, n, k, h + 2 * pad - 2, wd + 2 * pad - 2, c, 2 - pad, wide);
    }

    /// <summary>dw (K, C, 3, 3) += the weight gradient of Forward from dy (N, K, OH, OW) and x (N, C, H, W). Forward is linear
    /// in each filter's U = G g Gᵀ through M = U ⊙ V and Y = Aᵀ M A per tile, so dM = A dY Aᵀ (dy's 4×4 tiles, zero past the
    /// edge), dU[p] (K, C) = Σ_t dM[p] (K, T) · V[p] (C, T)ᵀ (36 GEMMs over the tiles of the batch) and dg = Gᵀ dU G. Each
    /// position's sum over tiles runs on one thread in a fixed order, so the result is the same run to run.</summary>
    internal static void GradWeight(float* dw, float* dy, float* x, int n, int c, int h, int wd, int k, int pad, bool wide)
    {
        int oh = h + 2 * pad - 2, ow = wd + 2 * pad - 2;
        var g = new Grid(n, (oh + Tile - 1) / Tile, (ow + Tile - 1) / Tile);
        var scratch = Scratch.Current;
        float* du = scratch.Get(Scratch.WinogradU, (long)Positions * k * c);       // (36, K, C)
        float* v = scratch.Get(Scratch.WinogradV, (long)Positions * c * g.Tiles);  // (36, C, T)
        float* dm = scratch.Get(Scratch.WinogradM, (long)Positions * k * g.Tiles); // (36, K, T)

        TransformInputs(v, x, n, c, h, wd, pad, g);
        Cores.For(0, n * k, plane => TransformGradOutput(dm + (long)(plane % k) * g.Tiles, (long)k * g.Tiles, dy + (long)plane * oh * ow,
            plane / k, oh, ow, g));
        Cores.For(0, Positions, p => GemmKernel.Sgemm(wide, k, c, g.Tiles, 1f, dm + (long)p * k * g.Tiles, g.Tiles, false,
            v + (long)p * c * g.Tiles, g.Tiles, true, 0f, du + (long)p * k * c, c, parallel: false));
        Cores.For(0, k, kk => TransformFilterGrad(dw + (long)kk * c * 9, du + (long)kk * c, (long)k * c, c));
    }

    /// <summary>Tiles of the batch: T = N·TH·TW, numbered (image, tile row, tile column).</summary>
    readonly record struct Grid(int N, int TH, int TW)
    {
        public int Tiles => N * TH * TW;
        public long First(int image, int ty) => ((long)image * TH + ty) * TW;
    }

    /// <summary>U[p] = G g Gᵀ for the (C, 3, 3) filters g of one output channel, one input channel per lane:
    /// u points at this channel's row of U[0], U[p] is posStride further on.
    /// G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1].</summary>
    static void TransformFilters(float* u, long posStride, float* w, int c)
    {
        float* g = stackalloc float[9 * Lanes];                           // [a·3 + b][lane]
        var rows = stackalloc TV[Patch * 3];                               // G g, a channel per lane: [i][b]
        for (int c0 = 0; c0 < c; c0 += Lanes)
        {
            int count = Math.Min(Lanes, c - c0);
            for (int t = 0; t < count; t++)
                for (int q = 0; q < 9; q++) g[q * Lanes + t] = w[(long)(c0 + t) * 9 + q];
            for (int b = 0; b < 3; b++)                                   // column b: G over its 3 rows
                FilterTransform(TV.Load(g + b * Lanes), TV.Load(g + (3 + b) * Lanes), TV.Load(g + (6 + b) * Lanes),
                    out rows[b], out rows[3 + b], out rows[6 + b], out rows[9 + b], out rows[12 + b], out rows[15 + b]);
            for (int i = 0; i < Patch; i++)                               // row i: Gᵀ over its 3 columns
            {
                var r = rows + i * 3;
                FilterTransform(r[0], r[1], r[2], out var o0, out var o1, out var o2, out var o3, out var o4, out var o5);
                float* at = u + i * Patch * posStride + c0;
                TV.StoreTail(o0, at, count); TV.StoreTail(o1, at + posStride, count);
                TV.StoreTail(o2, at + 2 * posStride, count); TV.StoreTail(o3, at + 3 * posStride, count);
                TV.StoreTail(o4, at + 4 * posStride, count); TV.StoreTail(o5, at + 5 * posStride, count);
            }
        }
    }

    /// <summary>G·g for one 3-vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FilterTransform(TV g0, TV g1, TV g2, out TV o0, out TV o1, out TV o2, out TV o3, out TV o4, out TV o5)
    {
        var sixth = TV.Create(1f / 6);
        TV even = g0 + g2, e = TV.Fma(TV.Create(1f / 24), g0, sixth * g2);
        TV odd = TV.Create(1f / 12) * g1;
        o0 = TV.Create(1f / 4) * g0;
        o1 = TV.Create(-1f / 6) * (even + g1);
        o2 = sixth * (g1 - even);
        o3 = e + odd;
        o4 = e - odd;
        o5 = g2;
    }

    /// <summary>dg += Gᵀ dU G for the filters of one output channel, one input channel per lane: du points at
    /// this channel's row of dU[0], dU[p] is posStride further on; dw at its (C, 3, 3) filters.</summary>
    static void TransformFilterGrad(float* dw, float* du, long posStride, int c)
    {
        var cols = stackalloc TV[3 * Patch];                               // Gᵀ dU, a channel per lane: [a][j]
        float* grads = stackalloc float[9 * Lanes];                      // [a·3 + b][lane]
        for (int c0 = 0; c0 < c; c0 += Lanes)
        {
            int count = Math.Min(Lanes, c - c0);
            for (int j = 0; j < Patch; j++)                               // column j: Gᵀ over its 6 rows
            {
                float* at = du + j * posStride + c0;
                long rowStep = Patch * posStride;
                FilterGradTransform(TV.LoadTail(at, count), TV.LoadTail(at + rowStep, count), TV.LoadTail(at + 2 * rowStep, count),
                    TV.LoadTail(at + 3 * rowStep, count), TV.LoadTail(at + 4 * rowStep, count), TV.LoadTail(at + 5 * rowStep, count),
                    out cols[j], out cols[Patch + j], out cols[2 * Patch + j]);
            }
            for (int a = 0; a < 3; a++)                                   // row a: G over its 6 columns
            {
                var r = cols + a * Patch;
                FilterGradTransform(r[0], r[1], r[2], r[3], r[4], r[5], out var g0, out var g1, out var g2);
                TV.Store(g0, grads + a * 3 * Lanes); TV.Store(g1, grads + (a * 3 + 1) * Lanes); TV.Store(g2, grads + (a * 3 + 2) * Lanes);
            }
            for (int t = 0; t < count; t++)
            {
                float* f = dw + (long)(c0 + t) * 9;
                for (int q = 0; q < 9; q++) f[q] += grads[q * Lanes + t];
            }
        }
    }

    /// <summary>Gᵀ·u for one 6-vector, Gᵀ = [¼ −⅙ −⅙ 1/24 1/24 0; 0 −⅙ ⅙ 1/12 −1/12 0; 0 −⅙ −⅙ ⅙ ⅙ 1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FilterGradTransform(TV u0, TV u1, TV u2, TV u3, TV u4, TV u5, out TV o0, out TV o1, out TV o2)
    {
        var sixth = TV.Create(1f / 6);
        TV p = u1 + u2, q = u3 + u4;
        o0 = TV.Fma(TV.Create(1f / 4), u0, TV.Fma(TV.Create(1f / 24), q, TV.Create(-1f / 6) * p));
        o1 = TV.Fma(sixth, u2 - u1, TV.Create(1f / 12) * (u3 - u4));
        o2 = TV.Fma(sixth, q - p, u5);
    }

    /// <summary>V for every input plane of x (N, C, H, W), the planes spread over the cores.</summary>
    static void TransformInputs(float* v, float* x, int n, int c, int h, int wd, int pad, Grid g) =>
        Cores.For(0, n * c, plane => TransformInput(v + (long)(plane % c) * g.Tiles, (long)c * g.Tiles, x + (long)plane * h * wd,
            plane / c, h, wd, pad, g));

    /// <summary>V[p][t] = (Bᵀ d B)[p] for every tile t of one input plane; v points at this channel's row of V[0], and
    /// V[p] is posStride further on. d is the zero-padded 6×6 patch at (4·ty − pad, 4·tx − pad).</summary>
    static void TransformInput(float* v, long posStride, float* plane, int image, int h, int wd, int pad, in Grid g)
    {
        int width = (g.TW + Lanes) / Lanes * Lanes;                        // tiles per phase row, with the spare t+1
        float* phases = stackalloc float[Patch * Tile * width];           // [row r][phase s][tile t]
        float* line = stackalloc float[Tile * width];                     // one input row, padded: line[pad + x] = row[x]
        var cols = stackalloc TV[Positions];                               // Bᵀ d, a tile per lane: [i][s]
        for (int ty = 0; ty < g.TH; ty++)
        {
            int first = 0;
            if (ty > 0)   // the last patch's rows 4 and 5 are this one's rows 0 and 1
            {
                new Span<float>(phases + Tile * Tile * width, 2 * Tile * width).CopyTo(new Span<float>(phases, 2 * Tile * width));
                first = 2;
            }
            for (int r = first; r < Patch; r++)
            {
                int yy = ty * Tile - pad + r;
                float* dst = phases + r * Tile * width;
                if ((uint)yy >= (uint)h) { new Span<float>(dst, Tile * width).Clear(); continue; }
                FillLine(line, plane + (long)yy * wd, pad, wd, Tile * width);
                Deinterleave(dst, line, width);
            }
            if (Sse.IsSupported)   // the next patch's four new rows, fetched while this one is transformed
                for (int yy = Math.Max(0, (ty + 1) * Tile - pad + 2); yy < Math.Min(h, (ty + 2) * Tile - pad + 2); yy++)
                    for (int x = 0; x < wd; x += 16) Sse.Prefetch0(plane + (long)yy * wd + x);
            for (int t0 = 0; t0 < g.TW; t0 += Lanes)
            {
                for (int s = 0; s < Patch; s++)                               // column s of the patch: Bᵀ over its 6 rows
                {
                    float* src = phases + (s & 3) * width + t0 + (s >> 2);
                    int rowStep = Tile * width;
                    InputTransform(TV.Load(src), TV.Load(src + rowStep), TV.Load(src + 2 * rowStep),
                        TV.Load(src + 3 * rowStep), TV.Load(src + 4 * rowStep), TV.Load(src + 5 * rowStep),
                        out cols[s], out cols[Patch + s], out cols[2 * Patch + s], out cols[3 * Patch + s], out cols[4 * Patch + s], out cols[5 * Patch + s]);
                }
                int count = Math.Min(Lanes, g.TW - t0);
                float* dst = v + g.First(image, ty) + t0;
                for (int i = 0; i < Patch; i++)                               // row i of (Bᵀ d): B over its 6 columns
                {
                    var c = cols + i * Patch;
                    InputTransform(c[0], c[1], c[2], c[3], c[4], c[5], out var o0, out var o1, out var o2, out var o3, out var o4, out var o5);
                    float* at = dst + i * Patch * posStride;
                    TV.StoreTail(o0, at, count); TV.StoreTail(o1, at + posStride, count);
                    TV.StoreTail(o2, at + 2 * posStride, count); TV.StoreTail(o3, at + 3 * posStride, count);
                    TV.StoreTail(o4, at + 4 * posStride, count); TV.StoreTail(o5, at + 5 * posStride, count);
                }
            }
        }
    }

    /// <summary>line[i] = row[i − shift] for i below total (a multiple of Lanes), zero where i − shift falls outside [0, length).
    /// One whole-vector store per Lanes floats, the loads Deinterleave4 makes next: a load that spans several earlier
    /// stores (a row copied in at a shift of pad floats) cannot take its data from them and waits until they are written
    /// to the cache. That stall made Deinterleave 4 % of the bench UNet's step (perf, 1 core, Xeon, 2026-12-05).</summary>
    static void FillLine(float* line, float* row, int shift, int length, int total)
    {
        for (int i = 0; i < total; i += Lanes)
        {
            int x0 = i - shift;
            TV.Store(x0 >= 0 && x0 + Lanes <= length ? TV.Load(row + x0) : TV.LoadWithin(row + x0, x0, length), line + i);
        }
    }

    /// <summary>Splits line (4·width floats) by index mod 4: phases[s·width + t] = line[4t + s], 4 vectors at a time.</summary>
    static void Deinterleave(float* phases, float* line, int width)
    {
        for (int t = 0; t < width; t += Lanes, line += Tile * Lanes) TV.Deinterleave4(phases + t, width, line);
    }

    /// <summary>Bᵀ·d for one 6-vector, Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void InputTransform(TV d0, TV d1, TV d2, TV d3, TV d4, TV d5,
        out TV o0, out TV o1, out TV o2, out TV o3, out TV o4, out TV o5)
    {
        var four = TV.Create(4f); var five = TV.Create(5f); var two = TV.Create(2f);
        o0 = TV.Fma(four, d0, d4) - five * d2;
        o1 = d3 + d4 - four * (d1 + d2);
        o2 = TV.Fma(four, d1 - d2, d4 - d3);
        o3 = TV.Fma(two, d3 - d1, d4 - d2);
        o4 = TV.Fma(two, d1 - d3, d4 - d2);
        o5 = TV.Fma(four, d1, d5) - five * d3;
    }

    /// <summary>dM[p][t] = (A dY Aᵀ)[p] for every tile t of one plane of dy (OH, OW); dm points at this channel's row of
    /// dM[0], dM[p] is posStride further on. dY is the 4×4 block at (4·ty, 4·tx), zero past the edge.</summary>
    static void TransformGradOutput(float* dm, long posStride, float* plane, int image, int oh, int ow, in Grid g)
    {
        int width = (g.TW + Lanes - 1) / Lanes * Lanes;
        float* phases = stackalloc float[Tile * Tile * width];            // [row r][phase s][tile t]
        float* line = stackalloc float[Tile * width];                     // one row of dy, zero past the edge
        var cols = stackalloc TV[Patch * Tile];                            // A dY, a tile per lane: [i][s]
        for (int ty = 0; ty < g.TH; ty++)
        {
            for (int r = 0; r < Tile; r++)
            {
                int yy = ty * Tile + r;
                float* dst = phases + r * Tile * width;
                if (yy >= oh) { new Span<float>(dst, Tile * width).Clear(); continue; }
                FillLine(line, plane + (long)yy * ow, 0, ow, Tile * width);
                Deinterleave(dst, line, width);
            }
            for (int t0 = 0; t0 < g.TW; t0 += Lanes)
            {
                for (int s = 0; s < Tile; s++)                                // column s of dY: A over its 4 rows
                {
                    float* src = phases + s * width + t0;
                    int rowStep = Tile * width;
                    GradOutputTransform(TV.Load(src), TV.Load(src + rowStep), TV.Load(src + 2 * rowStep),
                        TV.Load(src + 3 * rowStep), out cols[s], out cols[Tile + s], out cols[2 * Tile + s],
                        out cols[3 * Tile + s], out cols[4 * Tile + s], out cols[5 * Tile + s]);
                }
                int count = Math.Min(Lanes, g.TW - t0);
                float* dst = dm + g.First(image, ty) + t0;
                for (int i = 0; i < Patch; i++)                               // row i of (A dY): Aᵀ over its 4 columns
                {
                    var c = cols + i * Tile;
                    GradOutputTransform(c[0], c[1], c[2], c[3], out var o0, out var o1, out var o2, out var o3, out var o4, out var o5);
                    float* at = dst + i * Patch * posStride;
                    TV.StoreTail(o0, at, count); TV.StoreTail(o1, at + posStride, count);
                    TV.StoreTail(o2, at + 2 * posStride, count); TV.StoreTail(o3, at + 3 * posStride, count);
                    TV.StoreTail(o4, at + 4 * posStride, count); TV.StoreTail(o5, at + 5 * posStride, count);
                }
            }
        }
    }

    /// <summary>A·y for one 4-vector, A = Aᵀ's transpose = [1 0 0 0; 1 1 1 1; 1 −1 1 −1; 1 2 4 8; 1 −2 4 −8; 0 0 0 1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GradOutputTransform(TV y0, TV y1, TV y2, TV y3, out TV o0, out TV o1, out TV o2, out TV o3, out TV o4, out TV o5)
    {
        var four = TV.Create(4f);
        TV a = y0 + y2, b = y1 + y3;
        TV e = TV.Fma(four, y2, y0), f = TV.Create(2f) * TV.Fma(four, y3, y1);
        o0 = y0; o1 = a + b; o2 = a - b; o3 = e + f; o4 = e - f; o5 = y3;
    }

    /// <summary>One output plane (OH, OW) from M: Aᵀ M A per tile plus bias, Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0;
    /// 0 1 1 4 4 0; 0 1 −1 8 −8 1]; m points at this output channel's row of M[0], M[p] is posStride further on.</summary>
    static void TransformOutput(float* plane, float* m, long posStride, int image, int oh, int ow, in Grid g, float bias)
    {
        var rows = stackalloc TV[Tile * Patch];                            // Aᵀ M, a tile per lane: [i][j]
        float* line = stackalloc float[Tile * Lanes];                     // one output row of a vector of tiles, interleaved
        var b = TV.Create(bias);
        for (int ty = 0; ty < g.TH; ty++)
            for (int t0 = 0; t0 < g.TW; t0 += Lanes)
            {
                int count = Math.Min(Lanes, g.TW - t0);
                float* src = m + g.First(image, ty) + t0;
                for (int j = 0; j < Patch; j++)                               // column j: Aᵀ over its 6 rows
                {
                    float* at = src + j * posStride;
                    long rowStep = Patch * posStride;
                    OutputTransform(TV.LoadTail(at, count), TV.LoadTail(at + rowStep, count), TV.LoadTail(at + 2 * rowStep, count),
                        TV.LoadTail(at + 3 * rowStep, count), TV.LoadTail(at + 4 * rowStep, count), TV.LoadTail(at + 5 * rowStep, count),
                        out rows[j], out rows[Patch + j], out rows[2 * Patch + j], out rows[3 * Patch + j]);
                }
                for (int i = 0; i < Tile; i++)
                {
                    int yy = ty * Tile + i;
                    if (yy >= oh) break;
                    var r = rows + i * Patch;
                    OutputTransform(r[0], r[1], r[2], r[3], r[4], r[5], out var y0, out var y1, out var y2, out var y3);
                    int x0 = t0 * Tile, valid = Math.Min(count * Tile, ow - x0);
                    float* row = plane + (long)yy * ow + x0;
                    if (valid == Tile * Lanes) { TV.Interleave4(row, y0 + b, y1 + b, y2 + b, y3 + b); continue; }
                    TV.Interleave4(line, y0 + b, y1 + b, y2 + b, y3 + b);   // the row's ragged end, through line
                    new Span<float>(line, valid).CopyTo(new Span<float>(row, valid));
                }
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void OutputTransform(TV m0, TV m1, TV m2, TV m3, TV m4, TV m5, out TV o0, out TV o1, out TV o2, out TV o3)
    {
        TV a = m1 + m2, b = m1 - m2, e = m3 + m4, f = m3 - m4;
        o0 = m0 + a + e;
        o1 = TV.Fma(TV.Create(2f), f, b);
        o2 = TV.Fma(TV.Create(4f), e, a);
        o3 = TV.Fma(TV.Create(8f), f, b) + m5;
    }
}
