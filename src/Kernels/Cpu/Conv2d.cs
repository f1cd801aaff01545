// Conv2d forward and gradients as GEMMs over im2col columns (3×3 stride-1 ones: Winograd, Conv2dWinograd.cs and
// Conv2dWinogradSmall.cs, or shifted rows of a padded input, Conv2dShifts.cs).
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Per image, the columns of the output pixels [p0, p1) form a (InC·KH·KW, p1 − p0) matrix: row (c, kh, kw), column
    // p = oh·OW + ow holds x[c, oh·S + kh − P, ow·S + kw − P] (zero outside). Then, per image:
    //   y = w · columns (+ bias per row)      dcolumns = wᵀ · dy, scattered back onto dx      dw += dy · columnsᵀ
    // Where the whole batch's columns fit the budget (Im2Col.Folds), the images go side by side into one GEMM over all
    // cores, the columns made while the GEMM packs them (Im2Col.Source). Otherwise, a 1×1 stride-1 unpadded conv's
    // columns are the input itself; forward and grad-input spread one-core GEMMs over (image, block) tasks, each
    // building its block in its own scratch; grad-weight runs its blocks in order (see there).

    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s)
    {
        s.ValidateForward(y, x, w, bias);
        float* px = F(x), pw = F(w), py = F(y), pbias = FOrNull(bias);
        if (SmallWinograd(s) && UseVector512) { Winograd2x2<V512>.Forward(py, px, pw, pbias, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (SmallWinograd(s)) { Winograd2x2<V256>.Forward(py, px, pw, pbias, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, false); return; }
        if (WideWinograd(s)) { Winograd3x3<V512>.Forward(py, px, pw, pbias, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (Winograd(s)) { Winograd3x3<V256>.Forward(py, px, pw, pbias, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, UseVector512); return; }
        if (ByShifts(s)) { Conv2dByShifts(py, px, pw, pbias, s); return; }
        var g = new Im2Col(s, UseVector512);
        if (g.Folds)
        {   // y (OutC, N·P) = w · columns of every image, then each image's block of y to its place
            float* yf = Scratch.Current.Get(Scratch.FoldedImages, (long)s.OutC * g.Folded);
            var columns = new Im2Col.Source(g, px);
            GemmKernel.Sgemm(g.Wide, s.OutC, g.Folded, g.Rows, 1f, pw, g.Rows, false, columns.Operand(&columns), g.Folded, false,
                0f, yf, g.Folded, rowBias: pbias);
            g.Unfold(py, yf);
            return;
        }
        int block = g.PixelBlock(Im2Col.Splits(s.N), g.Rows), blocks = GemmKernel.CeilDiv(g.Pixels, block);
        Cores.For(0, s.N * blocks, t =>
        {
            int n = t / blocks, p0 = t % blocks * block, p1 = Math.Min(g.Pixels, p0 + block);
            float* cols = g.Columns(px + n * g.ImageIn, p0, p1, out long ld);
            GemmKernel.Sgemm(g.Wide, g.S.OutC, p1 - p0, g.Rows, 1f, pw, g.Rows, false, cols, ld, false,
                0f, py + n * g.ImageOut + p0, g.Pixels, rowBias: pbias, parallel: false);
        });
    }

    // Winograd F(2×2, 3×3) with channels along the lanes (Conv2dWinogradSmall.cs) for images too small for F(4×4)'s rows
    // of tiles (outputs of 8×8 to 16×16), with channels enough to fill its lanes and the GEMM's panels (64 columns wide,
    // 16 without AVX-512: both channel counts are a GEMM's width, one in the forward, one in the input's gradient).
    // `perf conv N C H W K 3`, forward+backward ms on 1 core, what ran before → F(2×2) (Xeon, 2026-12-05): [4,256,8,8] →
    // 256 7.05 → 5.51, [4,512,8,8] → 256 14.1 → 10.7, [4,128,8,8] → 128 2.10 → 1.42, [4,64,8,8] → 64 0.64 → 0.40,
    // [4,128,16,16] → 128 7.32 → 4.97, [4,256,16,16] → 256 26.6 → 17.4, [4,192,16,16] → 64 5.82 → 3.86, [4,64,16,16] →
    // 64 1.94 → 1.39. At 32×32 F(4×4) wins: [4,64,32,32] → 64 4.52-4.58 against 5.58-5.71 by F(2×2), → 128 7.55-7.74
    // against 9.63-11.5, [4,128,32,32] → 64 7.76-7.93 against 9.83-10.1 (2026-12-06). Slower too: 4×4 images
    // ([4,256,4,4] → 256 2.51 → 2.99) and channels that leave lanes or panels part-empty ([4,32,16,16] → 32 0.53 → 1.24,
    // [4,48,16,16] → 48 1.07 → 1.89, [4,96,32,32] → 96 12.0 → 15.9).
    bool SmallWinograd(in ConvShape s)
    {
        if (!Winograd2x2<V256>.Applies(s) || Math.Min(s.OutH, s.OutW) < 8 || Math.Max(s.OutH, s.OutW) > 16) return false;
        int panel = UseVector512 ? 64 : 16;
        bool Fills(int channels) => channels >= 64 && 8 * channels >= 7 * ((channels + panel - 1) / panel * panel);
        return Fills(s.InC) && Fills(s.OutC);
    }

    // Winograd's 16-lane transforms on AVX-512 only where a row holds more than 8 tiles (4 output pixels each: OW > 32;
    // the gradient of the input transforms rows of the forward's input, W). Narrower rows run the 8-lane transforms
    // ([4,64,32,32], `perf conv 4 64 32 32 64 3`, alternating runs on 1 core: forward 3.02-3.08 ms against 3.80-4.42),
    // with the GEMM at the backend's width all the same: the 6×64 kernel over the 6×16 one, after a 2 s warm-up, forward
    // 2.45-2.63 ms against 3.00-3.10 on 1 core and 1.05-1.19 against 1.24-1.30 on 2. Every code adds in the same order,
    // so results are bit-identical.
    bool WideWinograd(in ConvShape s) => UseVector512 && (Math.Max(s.OutW, s.W) + 3) / 4 > 8 && Winograd(s);

    // Winograd pays where its 36 GEMMs outweigh the transforms around them: the channels (the GEMMs' sizes) against the
    // transforms' lanes, and the tiles each transformed filter serves (the filter transform writes 4× the weights, and a
    // GEMM over few tiles is mostly loads of them), counting a row of fewer tiles than lanes as part-filled. Elsewhere
    // im2col. `perf conv N C H W C 3`, Winograd against im2col, forward+backward ms on 2 cores (Xeon with AVX-512,
    // 2026-12-05): [4,256,8,8] 12.0 / 5.2, [4,128,16,16] 5.2 / 4.9, [8,64,16,16] 4.0 / 3.1, [16,64,16,16] 8.3 / 6.5,
    // [8,32,32,32] 4.3 / 3.8 take im2col; [4,64,32,32] 4.1 / 5.7, [4,128,32,32] 10.4 / 16.7, [16,256,16,16] 43 / 65,
    // [4,32,64,64] 5.6 / 7.1 take Winograd; [4,256,16,16] 16.1 / 15.3 and [1,64,32,32] 1.27 / 1.36 are even.
    bool Winograd(in ConvShape s)
    {
        if (!Winograd3x3<V256>.Applies(s)) return false;
        int tw = (Math.Max(s.OutW, s.W) + 3) / 4, th = (Math.Max(s.OutH, s.H) + 3) / 4, lanes = UseVector512 && tw > 8 ? 16 : 8;
        long filled = (long)s.N * th * tw * Math.Min(tw, lanes) / lanes;
        int channels = Math.Min(s.InC, s.OutC);
        return channels * lanes >= 512 && channels * filled >= 16384;
    }

    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s)
    {
        s.ValidateGradInput(dx, dy, w);
        float* pdx = F(dx), pdy = F(dy), pw = F(w);
        if (SmallWinograd(s) && UseVector512) { Winograd2x2<V512>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (SmallWinograd(s)) { Winograd2x2<V256>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, false); return; }
        if (WideWinograd(s)) { Winograd3x3<V512>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (Winograd(s)) { Winograd3x3<V256>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, UseVector512); return; }
        if (ByShifts(s)) { Conv2dGradInputByShifts(pdx, pdy, pw, s); return; }
        var g = new Im2Col(s, UseVector512);
        if (g.Folds)
        {   // dcolumns (rows, N·P) = wᵀ · dy of every image side by side, then scattered onto each image's dx
            float* dyf = g.Fold(pdy), dcols = Scratch.Current.Get(Scratch.Columns, (long)g.Rows * g.Folded);
            GemmKernel.Sgemm(g.Wide, g.Rows, g.Folded, s.OutC, 1f, pw, g.Rows, true, dyf, g.Folded, false, 0f, dcols, g.Folded);
            int kk = s.KH * s.KW;
            Cores.For(0, s.N * s.InC, t =>
            {
                int n = t / g.S.InC, c = t % g.S.InC;
                float* dxn = pdx + n * g.ImageIn;
                new Span<float>(dxn + (long)c * g.Plane, g.Plane).Clear();
                g.Scatter(dxn, dcols + (long)c * kk * g.Folded + n * g.Pixels, c, c + 1, 0, g.Pixels, g.Folded);
            });
            return;
        }
        // Tasks: (image, group of input channels), so the scatter of one task never meets another's.
        int groups = Math.Min(s.InC, GemmKernel.CeilDiv(2 * Environment.ProcessorCount, s.N));
        int perGroup = GemmKernel.CeilDiv(s.InC, groups);
        groups = GemmKernel.CeilDiv(s.InC, perGroup);
        // Blocks run in turn inside a task. Sized for all channels' rows, not the group's, so that where the block bounds
        // fall (and so the order in which the scatter adds onto dx) never depends on the core count.
        int block = g.PixelBlock(1, g.Rows);
        Cores.For(0, s.N * groups, t =>
        {
            int n = t / groups, c0 = t % groups * perGroup, c1 = Math.Min(g.S.InC, c0 + perGroup);
            int kk = g.S.KH * g.S.KW, rows = (c1 - c0) * kk;
            float* dxn = pdx + n * g.ImageIn, dyn = pdy + n * g.ImageOut;
            if (!g.Pointwise) new Span<float>(dxn + (long)c0 * g.Plane, (c1 - c0) * g.Plane).Clear();
            for (int p0 = 0; p0 < g.Pixels; p0 += block)
            {
                int p1 = Math.Min(g.Pixels, p0 + block);
                // dcolumns[(c, kh, kw), p] = Σ_o w[o, (c, kh, kw)] · dy[o, p]: op(A) = wᵀ rows c0·kk.., read transposed.
                if (g.Pointwise)
                    GemmKernel.Sgemm(g.Wide, rows, p1 - p0, g.S.OutC, 1f, pw + c0, g.Rows, true, dyn + p0, g.Pixels, false,
                        0f, dxn + (long)c0 * g.Plane + p0, g.Plane, parallel: false);
                else
                {
                    float* dcols = Scratch.Current.Get(Scratch.Columns, (long)rows * (p1 - p0));
                    GemmKernel.Sgemm(g.Wide, rows, p1 - p0, g.S.OutC, 1f, pw + c0 * kk, g.Rows, true, dyn + p0, g.Pixels, false,
                        0f, dcols, p1 - p0, parallel: false);
                    g.Scatter(dxn, dcols, c0, c1, p0, p1, p1 - p0);
                }
            }
        });
    }

    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s)
    {
        s.ValidateGradWeight(dw, dbias, dy, x);
        var g = new Im2Col(s, UseVector512);
        float* pdw = F(dw), pdb = FOrNull(dbias), pdy = F(dy), px = F(x);
        if (pdb != null)
            for (int n = 0; n < s.N; n++)   // dbias[o] += Σ_p dy[n, o, p]
                for (int o = 0; o < s.OutC; o++) pdb[o] += Sum(pdy + n * g.ImageOut + (long)o * g.Pixels, g.Pixels);
        if (SmallWinograd(s) && UseVector512) { Winograd2x2<V512>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (SmallWinograd(s)) { Winograd2x2<V256>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, false); return; }
        if (WideWinograd(s)) { Winograd3x3<V512>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, true); return; }
        if (Winograd(s)) { Winograd3x3<V256>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, UseVector512); return; }
        if (ByShifts(s)) { Conv2dGradWeightByDots(pdw, pdy, px, s); return; }
        if (g.Folds)
        {   // dw += dy of every image side by side · their columnsᵀ: one GEMM N·P deep
            float* dyf = g.Fold(pdy);
            var columns = new Im2Col.Source(g, px);
            GemmKernel.Sgemm(g.Wide, s.OutC, g.Rows, g.Folded, 1f, dyf, g.Folded, false, columns.Operand(&columns), g.Folded, true,
                1f, pdw, g.Rows);
            return;
        }
        // Image by image and block by block, in order: the columns are built across the cores, then dw (OutC, rows) +=
        // dy[:, p0..p1] · columnsᵀ runs on every core, each core owning its part of dw: the sum order is fixed.
        int block = g.PixelBlock(1, g.Rows);
        float* cols = g.Pointwise ? null : Scratch.Current.Get(Scratch.Columns, g.Rows * g.Ld(0, block));
        for (int n = 0; n < s.N; n++)
        {
            float* xn = px + n * g.ImageIn;
            for (int p0 = 0; p0 < g.Pixels; p0 += block)
            {
                int p1 = Math.Min(g.Pixels, p0 + block);
                float* src = g.Pointwise ? xn + p0 : cols;
                long ld = g.Pointwise ? g.Plane : g.Ld(p0, p1);
                if (!g.Pointwise)
                    Cores.For(0, s.InC, c => g.Gather(xn, c, c + 1, p0, p1, cols + (long)c * g.S.KH * g.S.KW * ld, ld));
                // columns (rows, pixels) is op(B) read transposed.
                GemmKernel.Sgemm(g.Wide, s.OutC, g.Rows, p1 - p0, 1f, pdy + n * g.ImageOut + p0, g.Pixels, false, src, ld, true,
                    1f, pdw, g.Rows);
            }
        }
    }

    /// <summary>y[i] += x[i].</summary>
    static void Add(float* y, float* x, long n)
    {
        long i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            (Vector256.Load(y + i) + Vector256.Load(x + i)).Store(y + i);
        for (; i < n; i++) y[i] += x[i];
    }

    static float Sum(float* x, long n)
    {
        var acc = Vector256<float>.Zero;
        long i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count) acc += Vector256.Load(x + i);
        float sum = Vector256.Sum(acc);
        for (; i < n; i++) sum += x[i];
        return sum;
    }

    /// <summary>The geometry of one conv's columns, and building / scattering blocks of them.</summary>
    readonly struct Im2Col(ConvShape s, bool wide)
    {
        public readonly ConvShape S = s;
        public readonly bool Wide = wide;                         // the backend's vector width, for the GEMMs
        public readonly int Rows = s.InC * s.KH * s.KW;          // depth of the GEMM
        public readonly int Pixels = s.OutH * s.OutW;             // output pixels per image
        public readonly int Plane = s.H * s.W;
        public readonly long ImageIn = (long)s.InC * s.H * s.W, ImageOut = (long)s.OutC * s.OutH * s.OutW;
        public readonly bool Pointwise = s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.Pad == 0;

        const long ColumnBudget = 1 << 22;   // floats in one task's column block (16 MiB): few blocks, so w is packed few times

        /// <summary>Whether the batch's images go side by side into one GEMM (N·P columns, or N·P deep for dw): where the
        /// columns of all images fit the budget, so small images do not each pay for a GEMM of their own (the weights
        /// packed per image, a shallow dw update per image). `profile` of the demo's base UNet, 1 core: [4,128,8,8]
        /// forward 1.14 ms a call against a GEMM of the folded shape in 0.66 ms (Xeon with AVX-512, 2026-12-05).</summary>
        public bool Folds => S.N > 1 && (long)Rows * Folded <= ColumnBudget && (long)S.OutC * Folded <= ColumnBudget;

        /// <summary>Pixels of the whole batch, image n's at columns [n·P, (n+1)·P).</summary>
        public int Folded => S.N * Pixels;

        /// <summary>The columns of a batch (Rows, N·P) as a GEMM operand that is never stored: the GEMM's packing asks for
        /// runs of a row, made from x as it goes, so the columns (9× the input for a 3×3 conv) are not written out and
        /// read back. x stays valid for the call.</summary>
        public readonly struct Source(Im2Col g, float* x)
        {
            readonly Im2Col _g = g;
            readonly float* _x = x;

            public GemmKernel.Operand Operand(Source* self) => GemmKernel.Operand.Computed(self, &Row);

            /// <summary>dst[0..count) = row offset / (N·P) of the columns from pixel offset % (N·P) on, across images.</summary>
            static void Row(void* state, long offset, float* dst, int count)
            {
                var s = (Source*)state;
                var g = s->_g;
                int kk = g.S.KH * g.S.KW, row = (int)(offset / g.Folded), col = (int)(offset % g.Folded);
                int c = row / kk, kh = row % kk / g.S.KW, kw = row % g.S.KW;
                while (count > 0)
                {
                    int n = col / g.Pixels, p = col % g.Pixels, run = Math.Min(count, g.Pixels - p);
                    g.Walk(s->_x + n * g.ImageIn + (long)c * g.Plane, dst, kh, kw, p, p + run, scatter: false);
                    dst += run; col += run; count -= run;
                }
            }
        }

        /// <summary>An (N, OutC, P) tensor as (OutC, N·P), image n at columns [n·P, (n+1)·P), in the calling thread's scratch.</summary>
        public float* Fold(float* t)
        {
            float* f = Scratch.Current.Get(Scratch.FoldedImages, (long)S.OutC * Folded);
            CopyImages(t, f, fold: true);
            return f;
        }

        /// <summary>The inverse of Fold: t (N, OutC, P) from f (OutC, N·P).</summary>
        public void Unfold(float* t, float* f) => CopyImages(t, f, fold: false);

        /// <summary>Each image's (OutC, P) block copied between t (N, OutC, P) and f (OutC, N·P), either way.</summary>
        void CopyImages(float* t, float* f, bool fold)
        {
            var self = this;
            Cores.For(0, S.N, n =>
            {
                for (int o = 0; o < self.S.OutC; o++)
                {
                    float* image = t + n * self.ImageOut + (long)o * self.Pixels;
                    float* folded = f + (long)o * self.Folded + n * self.Pixels;
                    if (fold) Copy(folded, image, self.Pixels);
                    else Copy(image, folded, self.Pixels);
                }
            });
        }

        /// <summary>Pixels per block: within the budget for `rows` column rows, a whole number of GEMM micro-panels,
        /// and at most a `splits`-th of the image (so that enough blocks exist to keep every core busy).</summary>
        public int PixelBlock(int splits, int rows)
        {
            int nr = GemmKernel.NR(Wide);
            long budget = Pointwise ? Pixels : Math.Max(nr, ColumnBudget / rows / nr * nr);
            return (int)Math.Min(Pixels, Math.Min(budget, GemmKernel.RoundUp(GemmKernel.CeilDiv(Pixels, splits), nr)));
        }

        /// <summary>Blocks per image that give every core two tasks over n images.</summary>
        public static int Splits(int n) => GemmKernel.CeilDiv(2 * Environment.ProcessorCount, n);

        /// <summary>Distance between column rows of pixels [p0, p1): 64 bytes off a multiple of 128, so no 4 KiB cache aliasing.</summary>
        public long Ld(int p0, int p1) => GemmKernel.RoundUp(p1 - p0, 32) + 16;

        /// <summary>Columns of all channels for pixels [p0, p1) of image xn, in the calling thread's scratch (or xn itself
        /// when pointwise); ld is the distance between rows.</summary>
        public float* Columns(float* xn, int p0, int p1, out long ld)
        {
            if (Pointwise) { ld = Plane; return xn + p0; }
            ld = Ld(p0, p1);
            float* cols = Scratch.Current.Get(Scratch.Columns, Rows * ld);
            Gather(xn, 0, S.InC, p0, p1, cols, ld);
            return cols;
        }

        /// <summary>dst = the column rows of channels [c0, c1) for pixels [p0, p1), rows ld apart.</summary>
        public void Gather(float* xn, int c0, int c1, int p0, int p1, float* dst, long ld)
        {
            for (int c = c0; c < c1; c++)
                for (int kh = 0; kh < S.KH; kh++)
                    for (int kw = 0; kw < S.KW; kw++, dst += ld)
                        Walk(xn + (long)c * Plane, dst, kh, kw, p0, p1, scatter: false);
        }

        /// <summary>dxn[c, ...] += the column rows of channels [c0, c1) for pixels [p0, p1), rows ld apart (the adjoint of
        /// Columns).</summary>
        public void Scatter(float* dxn, float* dcols, int c0, int c1, int p0, int p1, long ld)
        {
            float* src = dcols;
            for (int c = c0; c < c1; c++)
                for (int kh = 0; kh < S.KH; kh++)
                    for (int kw = 0; kw < S.KW; kw++, src += ld)
                        Walk(dxn + (long)c * Plane, src, kh, kw, p0, p1, scatter: true);
        }

        /// <summary>One column row (kh, kw) over pixels [p0, p1), output row by output row: gather plane → row, or
        /// scatter-add row → plane. Input column iw = ow·S − P + kw is inside the image for ow in [lo, hi).</summary>
        void Walk(float* plane, float* row, int kh, int kw, int p0, int p1, bool scatter)
        {
            if (S.Stride == 1 && S.OutW == S.W) { Shifted(plane, row, kh, kw, p0, p1, scatter); return; }
            int ow = S.OutW, stride = S.Stride, shift = kw - S.Pad;
            int lo = Math.Min(ow, CeilDivNonNegative(-shift, stride)), hi = Math.Max(lo, Math.Min(ow, CeilDivNonNegative(S.W - shift, stride)));
            for (int oh = p0 / ow; oh * ow < p1; oh++)
            {
                int a = Math.Max(p0 - oh * ow, 0), b = Math.Min(p1 - oh * ow, ow);   // this output row's part of the block
                int ih = oh * stride - S.Pad + kh;
                float* r = row + (oh * ow - p0), src = plane + (long)ih * S.W + shift;
                int from = Math.Clamp(lo, a, b), to = Math.Clamp(hi, a, b);
                if ((uint)ih >= (uint)S.H) from = to = b;
                if (scatter)
                {
                    if (stride == 1) Add(src + from, r + from, to - from);
                    else for (int q = from; q < to; q++) src[q * stride] += r[q];
                    continue;
                }
                for (int q = a; q < from; q++) r[q] = 0f;
                if (stride == 1) Copy(r + from, src + from, to - from);
                else for (int q = from; q < to; q++) r[q] = src[q * stride];
                for (int q = Math.Max(from, to); q < b; q++) r[q] = 0f;
            }
        }

        /// <summary>Walk at stride 1 with OW = W: output pixel i reads plane element i + (kh − P)·W + (kw − P), so the row
        /// is one shifted copy (or add) of the plane, less the pixels whose read falls outside it or wraps across a row's
        /// edge (zeros in the gathered row; zeroed in the row before it is added). A short copy per output row made the
        /// columns of [4,32,32,32] cost as much as its GEMM.</summary>
        void Shifted(float* plane, float* row, int kh, int kw, int p0, int p1, bool scatter)
        {
            int w = S.W, dx = kw - S.Pad;
            long off = (long)(kh - S.Pad) * w + dx;
            int lo = (int)Math.Clamp(-off, p0, p1), hi = (int)Math.Clamp((long)S.H * w - off, lo, p1);
            if (scatter)
            {
                ZeroWrapped(row, p0, p1, w, dx);
                Add(plane + lo + off, row + lo - p0, hi - lo);
                return;
            }
            new Span<float>(row, lo - p0).Clear();
            Copy(row + lo - p0, plane + lo + off, hi - lo);
            new Span<float>(row + hi - p0, p1 - hi).Clear();
            ZeroWrapped(row, p0, p1, w, dx);
        }

        /// <summary>Zeros, in row (pixels [p0, p1)), the pixels in the first −dx (dx &lt; 0) or last dx columns of their
        /// image row of width w.</summary>
        static void ZeroWrapped(float* row, int p0, int p1, int w, int dx)
        {
            if (dx == 0) return;
            int from = dx < 0 ? 0 : Math.Max(0, w - dx), to = dx < 0 ? Math.Min(w, -dx) : w;
            for (int start = p0 - p0 % w; start < p1; start += w)
                for (int i = Math.Max(p0, start + from); i < Math.Min(p1, start + to); i++) row[i - p0] = 0f;
        }

        static int CeilDivNonNegative(int a, int b) => a <= 0 ? 0 : (a + b - 1) / b;
    }

    static void Copy(float* dst, float* src, int n)
    {
        int i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count) Vector256.Load(src + i).Store(dst + i);
        for (; i < n; i++) dst[i] = src[i];
    }
}
