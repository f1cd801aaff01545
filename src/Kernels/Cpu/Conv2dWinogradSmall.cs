// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions of small images: channels along the lanes, 16 GEMMs over the tiles.
using System.Runtime.CompilerServices;

namespace DreamBooth.Kernels.Cpu;

/// <summary>
/// Winograd's minimal filtering F(2×2, 3×3): each 4×4 input patch d and 3×3 filter g give a 2×2 output tile
/// Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, with Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
/// and Aᵀ = [1 1 1 0; 0 1 −1 −1], every coefficient exact in binary. Summed over the input channels, each of the 16
/// positions p is a matrix product over the T tiles of the batch, M[p] (T, K) = V[p] (T, C) · U[p]ᵀ with U[p] (K, C):
/// 16 multiplies per tile and channel pair against 36 for the direct form, 2.25× fewer.
/// F(4×4) (Conv2dWinograd.cs) saves 4×, but lays a row's tiles along the lanes, which the 2 tiles a row of an 8×8 image
/// leave mostly empty, and its 36 GEMMs over a batch's 16 such tiles are too thin to run fast. Here the channels lie along
/// the lanes: x goes first to zero-padded channels-last (N, H, W, C), so a patch is 16 vector loads per block of
/// channels, and y comes back from (N, OH, OW, K).
/// The gradient of the input is the forward of dy with the filters turned 180° and their channel axes swapped. Turning g
/// swaps rows 0 and 3 of G, so its transform is U read untransposed at the position with rows and columns 0 and 3
/// swapped: the filters are transformed once, the same way for both.
/// </summary>
[SkipLocalsInit]
internal static unsafe class Winograd2x2<TV> where TV : unmanaged, IVec<TV>
{
    const int Positions = 16;
    static int Lanes => TV.Count;

    internal static bool Applies(in ConvShape s) => s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.Pad <= 2 && TV.HasShuffles;

    /// <summary>y (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C, 3, 3), pad) + bias (K or null); y is overwritten. wide is
    /// the GEMM's width (CpuBackend.UseVector512), whatever the transforms' lanes.</summary>
    internal static void Forward(float* y, float* x, float* w, float* bias, int n, int c, int h, int wd, int k, int pad, bool wide) =>
        Convolve(y, x, TransformFilters(w, k, c), bias, n, c, h, wd, k, pad, turned: false, wide);

    /// <summary>dx (N, C, H, W) overwritten, from dy (N, K, OH, OW) and w (K, C, 3, 3): the forward of dy, padded 2 − pad,
    /// with the turned filters.</summary>
    internal static void GradInput(float* dx, float* dy, float* w, int n, int c, int h, int wd, int k, int pad, bool wide) =>
        Convolve(dx, dy, TransformFilters(w, k, c), null, n, k, h + 2 * pad - 2, wd + 2 * pad - 2, c, 2 - pad, turned: true, wide);

    /// <summary>dw (K, C, 3, 3) += the weight gradient of Forward from dy (N, K, OH, OW) and x (N, C, H, W): M = U ⊙ V and
    /// Y = Aᵀ M A per tile give dM = A dY Aᵀ (dy's 2×2 tiles, zero past the edge), dU[p] (K, C) = dM[p]ᵀ · V[p] over the
    /// tiles of the batch, and dg = Gᵀ dU G. Each position's sum over tiles runs on one thread in a fixed order, so the
    /// result is the same run to run.</summary>
    internal static void GradWeight(float* dw, float* dy, float* x, int n, int c, int h, int wd, int k, int pad, bool wide)
    {
        int oh = h + 2 * pad - 2, ow = wd + 2 * pad - 2;
        var g = new Grid(n, (oh + 1) / 2, (ow + 1) / 2, Round(c), Round(k));
        var scratch = Scratch.Current;
        float* v = Inputs(scratch, x, c, h, wd, pad, g);
        float* dyt = scratch.Get(Scratch.Columns, (long)g.Tiles * 4 * g.Out);          // (N, 2·TH, 2·TW, Out)
        float* dm = scratch.Get(Scratch.WinogradM, (long)Positions * g.Tiles * g.Out);  // (16, T, Out)
        float* du = scratch.Get(Scratch.WinogradU, (long)Positions * k * c);            // (16, K, C)
        ToChannelsLast(dyt, 2 * g.TH, 2 * g.TW, g.Out, dy, n, k, oh, ow, 0);
        Cores.For(0, g.Tiles, t => TransformGradOutput(dm, dyt, t, g));
        Cores.For(0, Positions, p => GemmKernel.Sgemm(wide, k, c, g.Tiles, 1f, dm + (long)p * g.Tiles * g.Out, g.Out, true,
            v + (long)p * g.Tiles * g.In, g.In, false, 0f, du + (long)p * k * c, c, parallel: false));
        Cores.For(0, k, kk => TransformFilterGrad(dw + (long)kk * c * 9, du + (long)kk * c, (long)k * c, c));
    }

    /// <summary>out (N, outC, OH, OW) from input (N, inC, H, W) and the transformed filters u (16, K, C) of Forward's w: the
    /// GEMMs read U[p] transposed, or for the turned filters (input dy, K = inC, C = outC) U at the swapped position
    /// as it lies.</summary>
    static void Convolve(float* output, float* input, float* u, float* bias, int n, int inC, int h, int wd, int outC, int pad,
        bool turned, bool wide)
    {
        int oh = h + 2 * pad - 2, ow = wd + 2 * pad - 2;
        var g = new Grid(n, (oh + 1) / 2, (ow + 1) / 2, Round(inC), Round(outC));
        var scratch = Scratch.Current;
        float* v = Inputs(scratch, input, inC, h, wd, pad, g);
        float* m = scratch.Get(Scratch.WinogradM, (long)Positions * g.Tiles * g.Out);   // (16, T, Out)
        float* yt = scratch.Get(Scratch.FoldedImages, (long)g.Tiles * 4 * g.Out);      // (N, 2·TH, 2·TW, Out)
        Cores.For(0, Positions, p => GemmKernel.Sgemm(wide, g.Tiles, outC, inC, 1f, v + (long)p * g.Tiles * g.In, g.In, false,
            u + (long)(turned ? Turned(p) : p) * inC * outC, turned ? outC : inC, !turned, 0f, m + (long)p * g.Tiles * g.Out, g.Out,
            parallel: false));
        Cores.For(0, g.Tiles, t => TransformOutput(yt, m, bias, outC, t, g));
        ToChannelsFirst(output, yt, 2 * g.TH, 2 * g.TW, g.Out, n, outC, oh, ow);
    }

    /// <summary>Tiles of the batch, T = N·TH·TW numbered (image, tile row, tile column); In and Out are the channel strides
    /// of the channels-last buffers, the channel counts rounded up to the lanes (the extra lanes hold zeros).</summary>
    readonly record struct Grid(int N, int TH, int TW, int In, int Out)
    {
        public int Tiles => N * TH * TW;
    }

    static int Round(int channels) => (channels + Lanes - 1) / Lanes * Lanes;

    /// <summary>The pixel (image, row, col) of a channels-last buffer (N, rows, cols, stride).</summary>
    static float* Pixel(float* data, int rows, int cols, int stride, int image, int row, int col) =>
        data + (((long)image * rows + row) * cols + col) * stride;

    /// <summary>Position p = 4·i + j with rows and columns 0 and 3 swapped: where the turned filter's transform lies.</summary>
    static int Turned(int p)
    {
        static int Swap(int i) => i == 0 ? 3 : i == 3 ? 0 : i;
        return Swap(p / 4) * 4 + Swap(p % 4);
    }

    /// <summary>V (16, T, In) of x (N, C, H, W): x to channels-last, padded on every side (its patch for tile (ty, tx)
    /// then starts at row 2·ty and column 2·tx), then Bᵀ d B per tile.</summary>
    static float* Inputs(Scratch scratch, float* x, int c, int h, int wd, int pad, Grid g)
    {
        float* xt = scratch.Get(Scratch.Padded, (long)g.N * (2 * g.TH + 2) * (2 * g.TW + 2) * g.In);   // (N, 2·TH + 2, 2·TW + 2, In)
        float* v = scratch.Get(Scratch.WinogradV, (long)Positions * g.Tiles * g.In);                    // (16, T, In)
        ToChannelsLast(xt, 2 * g.TH + 2, 2 * g.TW + 2, g.In, x, g.N, c, h, wd, pad);
        Cores.For(0, g.Tiles, t => TransformInput(v, xt, t, g));
        return v;
    }

    /// <summary>dst (N, rows, cols, stride) channels-last = src (N, C, H, W) placed at (offset + y, offset + x), zeros
    /// around it and in the lanes past C. Tasks (image, block of channels), lanes pixels at a time through a register
    /// transpose.</summary>
    static void ToChannelsLast(float* dst, int rows, int cols, int stride, float* src, int n, int c, int h, int wd, int offset)
    {
        int blocks = stride / Lanes;
        Cores.For(0, n * blocks, task =>
        {
            int image = task / blocks, c0 = task % blocks * Lanes, count = Math.Min(Lanes, c - c0), pixels = h * wd;
            for (int r = 0; r < rows; r++)
                for (int col = 0; col < cols; col++)
                    if ((uint)(r - offset) >= (uint)h || (uint)(col - offset) >= (uint)wd)
                        TV.Store(TV.Zero, Pixel(dst, rows, cols, stride, image, r, col) + c0);
            float* block = stackalloc float[Lanes * Lanes];                // [pixel][channel]
            float* plane = src + ((long)image * c + c0) * pixels;
            for (int p0 = 0; p0 < pixels; p0 += Lanes)
            {
                int width = Math.Min(Lanes, pixels - p0);
                if (width == Lanes && count == Lanes) TV.TransposeBlock(block, Lanes, plane + p0, pixels, 1f);
                else
                    for (int i = 0; i < width; i++)
                        for (int ch = 0; ch < Lanes; ch++) block[i * Lanes + ch] = ch < count ? plane[(long)ch * pixels + p0 + i] : 0f;
                for (int i = 0; i < width; i++)
                {
                    int y = (p0 + i) / wd, x = (p0 + i) % wd;
                    TV.Store(TV.Load(block + i * Lanes), Pixel(dst, rows, cols, stride, image, offset + y, offset + x) + c0);
                }
            }
        });
    }

    /// <summary>dst (N, K, H, W) = the top-left H × W pixels of src (N, rows, cols, stride) channels-last. Tasks (image,
    /// block of channels), lanes pixels at a time through a register transpose.</summary>
    static void ToChannelsFirst(float* dst, float* src, int rows, int cols, int stride, int n, int k, int h, int wd)
    {
        int blocks = stride / Lanes;
        Cores.For(0, n * blocks, task =>
        {
            int image = task / blocks, k0 = task % blocks * Lanes, count = Math.Min(Lanes, k - k0), pixels = h * wd;
            float* block = stackalloc float[Lanes * Lanes];                // [pixel][channel]
            float* plane = dst + ((long)image * k + k0) * pixels;
            for (int p0 = 0; p0 < pixels; p0 += Lanes)
            {
                int width = Math.Min(Lanes, pixels - p0);
                for (int i = 0; i < width; i++)
                    TV.Store(TV.Load(Pixel(src, rows, cols, stride, image, (p0 + i) / wd, (p0 + i) % wd) + k0), block + i * Lanes);
                if (width == Lanes && count == Lanes) TV.TransposeBlock(plane + p0, pixels, block, Lanes, 1f);
                else
                    for (int ch = 0; ch < count; ch++)
                        for (int i = 0; i < width; i++) plane[(long)ch * pixels + p0 + i] = block[i * Lanes + ch];
            }
        });
    }

    /// <summary>V[p][t] = (Bᵀ d B)[p] for tile t, d the 4×4 patch at (2·ty, 2·tx) of the padded channels-last xt.</summary>
    static void TransformInput(float* v, float* xt, int t, in Grid g)
    {
        int rows = 2 * g.TH + 2, cols = 2 * g.TW + 2, per = g.TH * g.TW;
        int image = t / per, ty = t % per / g.TW, tx = t % g.TW;
        long row = (long)cols * g.In, pos = (long)g.Tiles * g.In;
        float* d = Pixel(xt, rows, cols, g.In, image, 2 * ty, 2 * tx);
        float* at = v + (long)t * g.In;
        var b = stackalloc TV[Positions];                                  // Bᵀ d: [i][col]
        for (int c0 = 0; c0 < g.In; c0 += Lanes)
        {
            for (int col = 0; col < 4; col++)
            {
                float* p = d + col * g.In + c0;
                InputTransform(TV.Load(p), TV.Load(p + row), TV.Load(p + 2 * row), TV.Load(p + 3 * row),
                    out b[col], out b[4 + col], out b[8 + col], out b[12 + col]);
            }
            for (int i = 0; i < 4; i++)
            {
                InputTransform(b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3], out var o0, out var o1, out var o2, out var o3);
                float* o = at + 4 * i * pos + c0;
                TV.Store(o0, o); TV.Store(o1, o + pos); TV.Store(o2, o + 2 * pos); TV.Store(o3, o + 3 * pos);
            }
        }
    }

    /// <summary>Bᵀ·d for one 4-vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void InputTransform(TV d0, TV d1, TV d2, TV d3, out TV o0, out TV o1, out TV o2, out TV o3)
    {
        o0 = d0 - d2;
        o1 = d1 + d2;
        o2 = d2 - d1;
        o3 = d1 - d3;
    }

    /// <summary>The 2×2 output tile t = Aᵀ M A + bias, to yt (N, 2·TH, 2·TW, Out) channels-last.</summary>
    static void TransformOutput(float* yt, float* m, float* bias, int k, int t, in Grid g)
    {
        int per = g.TH * g.TW, image = t / per, ty = t % per / g.TW, tx = t % g.TW;
        long pos = (long)g.Tiles * g.Out;
        float* top = Pixel(yt, 2 * g.TH, 2 * g.TW, g.Out, image, 2 * ty, 2 * tx), bottom = top + 2L * g.TW * g.Out;
        float* at = m + (long)t * g.Out;
        var a = stackalloc TV[8];                                          // Aᵀ M: [i][col]
        for (int k0 = 0; k0 < g.Out; k0 += Lanes)
        {
            for (int col = 0; col < 4; col++)
            {
                float* p = at + col * pos + k0;
                OutputTransform(TV.Load(p), TV.Load(p + 4 * pos), TV.Load(p + 8 * pos), TV.Load(p + 12 * pos), out a[col], out a[4 + col]);
            }
            var b = bias == null ? TV.Zero : TV.LoadTail(bias + k0, Math.Min(Lanes, k - k0));
            OutputTransform(a[0], a[1], a[2], a[3], out var y00, out var y01);
            OutputTransform(a[4], a[5], a[6], a[7], out var y10, out var y11);
            TV.Store(y00 + b, top + k0); TV.Store(y01 + b, top + g.Out + k0);
            TV.Store(y10 + b, bottom + k0); TV.Store(y11 + b, bottom + g.Out + k0);
        }
    }

    /// <summary>Aᵀ·m for one 4-vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void OutputTransform(TV m0, TV m1, TV m2, TV m3, out TV o0, out TV o1)
    {
        o0 = m0 + m1 + m2;
        o1 = m1 - m2 - m3;
    }

    /// <summary>dM[p][t] = (A dY Aᵀ)[p] for tile t, dY its 2×2 block of dyt (N, 2·TH, 2·TW, Out) channels-last.</summary>
    static void TransformGradOutput(float* dm, float* dyt, int t, in Grid g)
    {
        int per = g.TH * g.TW, image = t / per, ty = t % per / g.TW, tx = t % g.TW;
        long pos = (long)g.Tiles * g.Out;
        float* top = Pixel(dyt, 2 * g.TH, 2 * g.TW, g.Out, image, 2 * ty, 2 * tx), bottom = top + 2L * g.TW * g.Out;
        float* at = dm + (long)t * g.Out;
        for (int k0 = 0; k0 < g.Out; k0 += Lanes)
        {
            GradOutputTransform(TV.Load(top + k0), TV.Load(bottom + k0), out var a00, out var a10, out var a20, out var a30);
            GradOutputTransform(TV.Load(top + g.Out + k0), TV.Load(bottom + g.Out + k0), out var a01, out var a11, out var a21, out var a31);
            StoreRow(at + k0, pos, a00, a01);
            StoreRow(at + 4 * pos + k0, pos, a10, a11);
            StoreRow(at + 8 * pos + k0, pos, a20, a21);
            StoreRow(at + 12 * pos + k0, pos, a30, a31);
        }

        static void StoreRow(float* o, long pos, TV r0, TV r1)
        {
            GradOutputTransform(r0, r1, out var o0, out var o1, out var o2, out var o3);
            TV.Store(o0, o); TV.Store(o1, o + pos); TV.Store(o2, o + 2 * pos); TV.Store(o3, o + 3 * pos);
        }
    }

    /// <summary>A·y for one 2-vector, A = [1 0; 1 1; 1 −1; 0 −1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GradOutputTransform(TV y0, TV y1, out TV o0, out TV o1, out TV o2, out TV o3)
    {
        o0 = y0;
        o1 = y0 + y1;
        o2 = y0 - y1;
        o3 = -y1;
    }

    /// <summary>U (16, K, C) = G g Gᵀ of every filter of w (K, C, 3, 3), a channel per lane; in the GEMMs' scratch slot.</summary>
    static float* TransformFilters(float* w, int k, int c)
    {
        float* u = Scratch.Current.Get(Scratch.WinogradU, (long)Positions * k * c);
        long pos = (long)k * c, total = 9 * pos;
        Cores.For(0, k, kk =>
        {
            float* taps = stackalloc float[Lanes * Lanes];                 // [channel][tap] (16 lanes)
            float* g = stackalloc float[Math.Max(9, Lanes) * Lanes];       // [tap][channel]
            var rows = stackalloc TV[12];                                  // G g: [i][col]
            for (int c0 = 0; c0 < c; c0 += Lanes)
            {
                int count = Math.Min(Lanes, c - c0);
                float* filters = w + ((long)kk * c + c0) * 9;
                if (Lanes > 9 && count == Lanes && ((long)kk * c + c0 + Lanes) * 9 + Lanes - 9 <= total)
                    TV.TransposeBlock(g, Lanes, filters, 9, 1f);  // rows past tap 8 read the next filters, unused
                else if (Lanes > 9)
                {
                    for (int ch = 0; ch < Lanes; ch++) TV.Store(ch < count ? TV.LoadTail(filters + ch * 9, 9) : TV.Zero, taps + ch * Lanes);
                    TV.TransposeBlock(g, Lanes, taps, Lanes, 1f);
                }
                else
                    for (int q = 0; q < 9; q++)
                        for (int ch = 0; ch < Lanes; ch++) g[q * Lanes + ch] = ch < count ? filters[ch * 9 + q] : 0f;
                for (int col = 0; col < 3; col++)
                    FilterTransform(TV.Load(g + col * Lanes), TV.Load(g + (3 + col) * Lanes), TV.Load(g + (6 + col) * Lanes),
                        out rows[col], out rows[3 + col], out rows[6 + col], out rows[9 + col]);
                for (int i = 0; i < 4; i++)
                {
                    FilterTransform(rows[3 * i], rows[3 * i + 1], rows[3 * i + 2], out var o0, out var o1, out var o2, out var o3);
                    float* o = u + 4 * i * pos + (long)kk * c + c0;
                    TV.StoreTail(o0, o, count); TV.StoreTail(o1, o + pos, count);
                    TV.StoreTail(o2, o + 2 * pos, count); TV.StoreTail(o3, o + 3 * pos, count);
                }
            }
        });
        return u;
    }

    /// <summary>G·g for one 3-vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FilterTransform(TV g0, TV g1, TV g2, out TV o0, out TV o1, out TV o2, out TV o3)
    {
        var half = TV.Create(0.5f);
        TV even = g0 + g2;
        o0 = g0;
        o1 = half * (even + g1);
        o2 = half * (even - g1);
        o3 = g2;
    }

    /// <summary>dg += Gᵀ dU G for the filters of one output channel, a channel per lane: du points at this channel's row
    /// of dU[0], dU[p] is pos further on; dw at its (C, 3, 3) filters.</summary>
    static void TransformFilterGrad(float* dw, float* du, long pos, int c)
    {
        var cols = stackalloc TV[12];                                      // Gᵀ dU: [a][col]
        float* grads = stackalloc float[Math.Max(9, Lanes) * Lanes];      // [tap][channel]
        float* taps = stackalloc float[Lanes * Lanes];                    // [channel][tap] (16 lanes)
        for (int q = 9 * Lanes; q < Lanes * Lanes; q++) grads[q] = 0f;
        for (int c0 = 0; c0 < c; c0 += Lanes)
        {
            int count = Math.Min(Lanes, c - c0);
            for (int col = 0; col < 4; col++)
            {
                float* at = du + col * pos + c0;
                FilterGradTransform(TV.LoadTail(at, count), TV.LoadTail(at + 4 * pos, count), TV.LoadTail(at + 8 * pos, count),
                    TV.LoadTail(at + 12 * pos, count),
                    out cols[col], out cols[4 + col], out cols[8 + col]);
            }
            for (int a = 0; a < 3; a++)
            {
                FilterGradTransform(cols[4 * a], cols[4 * a + 1], cols[4 * a + 2], cols[4 * a + 3], out var g0, out var g1, out var g2);
                TV.Store(g0, grads + 3 * a * Lanes); TV.Store(g1, grads + (3 * a + 1) * Lanes); TV.Store(g2, grads + (3 * a + 2) * Lanes);
            }
            if (Lanes > 9)
            {
                TV.TransposeBlock(taps, Lanes, grads, Lanes, 1f);
                for (int ch = 0; ch < count; ch++)
                {
                    float* f = dw + (long)(c0 + ch) * 9;
                    TV.StoreTail(TV.LoadTail(f, 9) + TV.Load(taps + ch * Lanes), f, 9);
                }
            }
            else
                for (int ch = 0; ch < count; ch++)
                    for (int q = 0; q < 9; q++) dw[(long)(c0 + ch) * 9 + q] += grads[q * Lanes + ch];
        }
    }

    /// <summary>Gᵀ·u for one 4-vector, Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FilterGradTransform(TV u0, TV u1, TV u2, TV u3, out TV o0, out TV o1, out TV o2)
    {
        var half = TV.Create(0.5f);
        TV sum = half * (u1 + u2);
        o0 = u0 + sum;
        o1 = half * (u1 - u2);
        o2 = sum + u3;
    }
}
