// Conv2d 3×3, stride 1, pad 1 with few output channels, read in place from shifted rows of a zero-padded input (no im2col).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    // The batch goes onto one grid per channel: rows of W + 1 (each ends in one zero, which is also the left neighbour of
    // the next row's first pixel), images of H + 1 rows (the last one zero, the bottom neighbour of this image and the top
    // one of the next). Grid position q = n·I + oh·R + ow stands for output pixel (n, oh, ow), and the input padded onto
    // such a grid after a lead of one row and one float holds x[n, c, oh + kh − 1, ow + kw − 1] (or the padding's zero)
    // at q + kh·R + kw. So row (c, kh, kw) of im2col's columns is a row of the padded input, shifted, and:
    //   y on the grid (OutC, grid) = w (OutC, 9·InC) · those rows      (GEMM; B given by row pointers, read in place)
    //   dx on the grid (InC, grid) = wᵀ (InC, 9·OutC) · dy's rows, the taps flipped
    //   dw[o, c, kh, kw] += Σ_q dy on the grid[o, q] · xpad[c, q + kh·R + kw]   (dot products of two rows in place:
    //                                                                            4×6 register tiles, lanes along q)
    // then the grid's pixels go back to (N, C, H, W). The grid's other positions (each row's last, each image's last row,
    // the tail) cost 6 % more columns at 32×32, 13 % at 16×16. im2col instead makes the (9·InC, N·P) columns, packs or
    // transposes them, and scatters the input's gradient back; with few output channels each column element serves few
    // products (x[4,32,32,32] → 32 ran at 35-51 % of the FMA peak in profile). `perf conv`, 1 core, forward and
    // forward+backward ms, im2col → shifts (Xeon with AVX-512, 2026-12-05): [4,32,32,32] → 32 0.98 / 3.14 → 0.66 / 2.03,
    // [4,96,32,32] → 32 2.88 / 9.08 → 1.91 / 5.72, [4,32,32,32] → 64 1.52 / 5.52 → 1.18 / 3.81, [4,64,16,16] → 64
    // 0.76 / 2.28 → 0.58 / 2.04, [4,192,16,16] → 64 2.21 / 8.68 → 1.70 / 5.83. With 128 output channels the GEMM over
    // packed columns wins the backward ([4,32,32,32] → 128 7.9 → 8.2, [4,128,16,16] → 128 7.3 → 7.8), and so it does on
    // a grid of more than 15 % padding (8×8 images: 27 %; [4,64,8,8] → 64 forward+backward 0.67 → 0.80).

    bool ByShifts(in ConvShape s) =>
        s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.Pad == 1 && s.OutC <= 64 && 20L * (s.H + 1) * (s.W + 1) <= 23L * s.H * s.W
        && !Winograd(s);

    // y (N, OutC, H, W), x (N, InC, H, W), w (OutC, InC, 3, 3), bias (OutC) or null
    void Conv2dByShifts(float* py, float* px, float* pw, float* pbias, in ConvShape s) =>
        GemmOverShiftedRows(py, s.OutC, px, s.InC, pw, pbias, flipped: false, s);

    // dx (N, InC, H, W) overwritten, dy (N, OutC, H, W), w (OutC, InC, 3, 3)
    void Conv2dGradInputByShifts(float* pdx, float* pdy, float* pw, in ConvShape s)
    {
        int inC = s.InC, outC = s.OutC;
        float* wt = Scratch.Current.Get(Scratch.TapWeights, 9L * outC * inC);   // (InC, OutC, 3, 3)
        Cores.For(0, inC, c =>
        {
            for (int o = 0; o < outC; o++) Copy(wt + ((long)c * outC + o) * 9, pw + ((long)o * inC + c) * 9, 9);
        });
        GemmOverShiftedRows(pdx, inC, pdy, outC, wt, null, flipped: true, s);
    }

    // output (N, outChannels, H, W) = weights (outChannels, 9·inChannels) · the shifted rows of input (N, inChannels, H, W)
    // (+ bias (outChannels) or null): the input padded onto the grid, one GEMM over its rows (the taps flipped for the
    // input's gradient, where input is dy and weights are wᵀ), the grid's pixels compacted into output.
    void GemmOverShiftedRows(float* output, int outChannels, float* input, int inChannels, float* weights, float* bias, bool flipped,
        in ConvShape s)
    {
        var g = new TapGrid(s);
        var scratch = Scratch.Current;
        float* padded = g.Place(scratch.Get(Scratch.Padded, inChannels * g.Ld), input, inChannels, g.R + 1);
        float** rows = g.ShiftedRows(scratch, padded, inChannels, flipped);
        float* grid = scratch.Get(Scratch.FoldedImages, outChannels * g.Ld);
        GemmKernel.Sgemm(UseVector512, outChannels, g.Grid, 9 * inChannels, 1f, weights, 9 * inChannels, false,
            GemmKernel.Operand.RowPointers(rows), 0, false, 0f, grid, g.Ld, rowBias: bias);
        g.Compact(output, grid, outChannels);
    }

    // dw (OutC, InC, 3, 3) accumulated, dy (N, OutC, H, W), x (N, InC, H, W)
    void Conv2dGradWeightByDots(float* pdw, float* pdy, float* px, in ConvShape s)
    {
        var g = new TapGrid(s);
        var scratch = Scratch.Current;
        float* xpad = g.Place(scratch.Get(Scratch.Padded, s.InC * g.Ld), px, s.InC, g.R + 1);
        float* dyg = g.Place(scratch.Get(Scratch.FoldedImages, s.OutC * g.Ld), pdy, s.OutC, 0);
        int cols = 9 * s.InC, outC = s.OutC, grid = g.Grid;
        long ld = g.Ld;
        bool wide = UseVector512;
        float** rows = g.ShiftedRows(scratch, xpad, s.InC, flipped: false);
        Cores.For(0, GemmKernel.CeilDiv(cols, 6), jb =>   // 6 columns of dw each, so the sums never depend on the cores
        {
            int j0 = jb * 6, n = Math.Min(6, cols - j0);
            for (int o = 0; o < outC; o += wide ? 4 : 2)
                if (wide) Dot4x6(pdw + (long)o * cols + j0, cols, dyg + o * ld, ld, rows + j0, Math.Min(4, outC - o), n, grid);
                else Dot2x6(pdw + (long)o * cols + j0, cols, dyg + o * ld, ld, rows + j0, Math.Min(2, outC - o), n, grid);
        });
    }

    /// <summary>dw[i·ldw + j] += Σ_q a[i·lda + q] · rows[j][q] over q in [0, k), k a multiple of 16, for i &lt; m ≤ 4 and
    /// j &lt; n ≤ 6: each lane sums every 16th product, then the lanes are added. Rows past m or n read the last one again.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Dot4x6(float* dw, long ldw, float* a, long lda, float** rows, int m, int n, int k)
    {
        float* a0 = a, a1 = a + Math.Min(1, m - 1) * lda, a2 = a + Math.Min(2, m - 1) * lda, a3 = a + Math.Min(3, m - 1) * lda;
        float* b0 = rows[0], b1 = rows[Math.Min(1, n - 1)], b2 = rows[Math.Min(2, n - 1)];
        float* b3 = rows[Math.Min(3, n - 1)], b4 = rows[Math.Min(4, n - 1)], b5 = rows[Math.Min(5, n - 1)];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c24 = default, c25 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default, c34 = default, c35 = default;
        for (int q = 0; q < k; q += 16)
        {
            var x0 = Vector512.Load(a0 + q);
            var x1 = Vector512.Load(a1 + q);
            var x2 = Vector512.Load(a2 + q);
            var x3 = Vector512.Load(a3 + q);
            var y = Vector512.Load(b0 + q);
            c00 = Vector512.FusedMultiplyAdd(x0, y, c00); c10 = Vector512.FusedMultiplyAdd(x1, y, c10);
            c20 = Vector512.FusedMultiplyAdd(x2, y, c20); c30 = Vector512.FusedMultiplyAdd(x3, y, c30);
            y = Vector512.Load(b1 + q);
            c01 = Vector512.FusedMultiplyAdd(x0, y, c01); c11 = Vector512.FusedMultiplyAdd(x1, y, c11);
            c21 = Vector512.FusedMultiplyAdd(x2, y, c21); c31 = Vector512.FusedMultiplyAdd(x3, y, c31);
            y = Vector512.Load(b2 + q);
            c02 = Vector512.FusedMultiplyAdd(x0, y, c02); c12 = Vector512.FusedMultiplyAdd(x1, y, c12);
            c22 = Vector512.FusedMultiplyAdd(x2, y, c22); c32 = Vector512.FusedMultiplyAdd(x3, y, c32);
            y = Vector512.Load(b3 + q);
            c03 = Vector512.FusedMultiplyAdd(x0, y, c03); c13 = Vector512.FusedMultiplyAdd(x1, y, c13);
            c23 = Vector512.FusedMultiplyAdd(x2, y, c23); c33 = Vector512.FusedMultiplyAdd(x3, y, c33);
            y = Vector512.Load(b4 + q);
            c04 = Vector512.FusedMultiplyAdd(x0, y, c04); c14 = Vector512.FusedMultiplyAdd(x1, y, c14);
            c24 = Vector512.FusedMultiplyAdd(x2, y, c24); c34 = Vector512.FusedMultiplyAdd(x3, y, c34);
            y = Vector512.Load(b5 + q);
            c05 = Vector512.FusedMultiplyAdd(x0, y, c05); c15 = Vector512.FusedMultiplyAdd(x1, y, c15);
            c25 = Vector512.FusedMultiplyAdd(x2, y, c25); c35 = Vector512.FusedMultiplyAdd(x3, y, c35);
        }
        float* sums = stackalloc float[24];
        sums[0] = Vector512.Sum(c00); sums[1] = Vector512.Sum(c01); sums[2] = Vector512.Sum(c02);
        sums[3] = Vector512.Sum(c03); sums[4] = Vector512.Sum(c04); sums[5] = Vector512.Sum(c05);
        sums[6] = Vector512.Sum(c10); sums[7] = Vector512.Sum(c11); sums[8] = Vector512.Sum(c12);
        sums[9] = Vector512.Sum(c13); sums[10] = Vector512.Sum(c14); sums[11] = Vector512.Sum(c15);
        sums[12] = Vector512.Sum(c20); sums[13] = Vector512.Sum(c21); sums[14] = Vector512.Sum(c22);
        sums[15] = Vector512.Sum(c23); sums[16] = Vector512.Sum(c24); sums[17] = Vector512.Sum(c25);
        sums[18] = Vector512.Sum(c30); sums[19] = Vector512.Sum(c31); sums[20] = Vector512.Sum(c32);
        sums[21] = Vector512.Sum(c33); sums[22] = Vector512.Sum(c34); sums[23] = Vector512.Sum(c35);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) dw[i * ldw + j] += sums[i * 6 + j];
    }

    /// <summary>Dot4x6 in 8 lanes, 2 rows of a (12 accumulators of 16 ymm registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Dot2x6(float* dw, long ldw, float* a, long lda, float** rows, int m, int n, int k)
    {
        float* a0 = a, a1 = a + Math.Min(1, m - 1) * lda;
        float* b0 = rows[0], b1 = rows[Math.Min(1, n - 1)], b2 = rows[Math.Min(2, n - 1)];
        float* b3 = rows[Math.Min(3, n - 1)], b4 = rows[Math.Min(4, n - 1)], b5 = rows[Math.Min(5, n - 1)];
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        for (int q = 0; q < k; q += 8)
        {
            var x0 = Vector256.Load(a0 + q);
            var x1 = Vector256.Load(a1 + q);
            var y = Vector256.Load(b0 + q);
            c00 = Vector256.FusedMultiplyAdd(x0, y, c00); c10 = Vector256.FusedMultiplyAdd(x1, y, c10);
            y = Vector256.Load(b1 + q);
            c01 = Vector256.FusedMultiplyAdd(x0, y, c01); c11 = Vector256.FusedMultiplyAdd(x1, y, c11);
            y = Vector256.Load(b2 + q);
            c02 = Vector256.FusedMultiplyAdd(x0, y, c02); c12 = Vector256.FusedMultiplyAdd(x1, y, c12);
            y = Vector256.Load(b3 + q);
            c03 = Vector256.FusedMultiplyAdd(x0, y, c03); c13 = Vector256.FusedMultiplyAdd(x1, y, c13);
            y = Vector256.Load(b4 + q);
            c04 = Vector256.FusedMultiplyAdd(x0, y, c04); c14 = Vector256.FusedMultiplyAdd(x1, y, c14);
            y = Vector256.Load(b5 + q);
            c05 = Vector256.FusedMultiplyAdd(x0, y, c05); c15 = Vector256.FusedMultiplyAdd(x1, y, c15);
        }
        float* sums = stackalloc float[12];
        sums[0] = Vector256.Sum(c00); sums[1] = Vector256.Sum(c01); sums[2] = Vector256.Sum(c02);
        sums[3] = Vector256.Sum(c03); sums[4] = Vector256.Sum(c04); sums[5] = Vector256.Sum(c05);
        sums[6] = Vector256.Sum(c10); sums[7] = Vector256.Sum(c11); sums[8] = Vector256.Sum(c12);
        sums[9] = Vector256.Sum(c13); sums[10] = Vector256.Sum(c14); sums[11] = Vector256.Sum(c15);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) dw[i * ldw + j] += sums[i * 6 + j];
    }

    /// <summary>The grid: R = W + 1 floats a row, I = (H + 1)·R an image, Grid positions (N·I rounded up to whole GEMM
    /// micro-panels), and Ld floats per channel: a lead, the grid, the reach of the last tap.</summary>
    readonly struct TapGrid
    {
        public readonly ConvShape S;
        public readonly int R, I, Grid;
        public readonly long Ld;

        public TapGrid(in ConvShape s)
        {
            S = s;
            R = s.W + 1; I = (s.H + 1) * R;
            Grid = GemmKernel.RoundUp(s.N * I, GemmKernel.NR(true));   // whole 64-wide panels: no row is read past Ld
            Ld = GemmKernel.RoundUp(Grid + 3 * R + 3, 32) + 16;   // 64 bytes off a multiple of 128: rows never alias in L1
        }

        /// <summary>Row (c, kh, kw) of a padded tensor's taps: channel c from kh·R + kw on, or flipped (the input's
        /// gradient, dy at q + (2 − kh)·R + 2 − kw).</summary>
        public float** ShiftedRows(Scratch scratch, float* padded, int channels, bool flipped)
        {
            float** rows = (float**)scratch.Get(Scratch.ShiftedRows, 2L * 9 * channels);
            for (int j = 0; j < 9 * channels; j++)
            {
                int t = flipped ? 8 - j % 9 : j % 9;
                rows[j] = padded + j / 9 * Ld + t / 3 * R + t % 3;
            }
            return rows;
        }

        /// <summary>t (N, channels, H, W) = the grid's pixels of g (channels, Ld).</summary>
        public void Compact(float* t, float* g, int channels)
        {
            var self = this;
            Cores.For(0, channels, c =>
            {
                var s = self.S;
                for (int n = 0; n < s.N; n++)
                {
                    float* dst = t + ((long)n * channels + c) * s.H * s.W, src = g + c * self.Ld + n * self.I;
                    for (int h = 0; h < s.H; h++) Copy(dst + h * s.W, src + h * self.R, s.W);
                }
            });
        }

        /// <summary>dst (channels, Ld): t (N, channels, H, W) with pixel (n, h, w) at lead + n·I + h·R + w, zeros elsewhere.</summary>
        public float* Place(float* dst, float* t, int channels, int lead)
        {
            var self = this;
            Cores.For(0, channels, c =>
            {
                var s = self.S;
                float* d = dst + c * self.Ld;
                new Span<float>(d, lead).Clear();
                float* row = d + lead;
                for (int n = 0; n < s.N; n++)
                {
                    float* src = t + ((long)n * channels + c) * s.H * s.W;
                    for (int h = 0; h < s.H; h++, row += self.R, src += s.W)
                    {
                        Copy(row, src, s.W);
                        row[s.W] = 0f;
                    }
                    new Span<float>(row, self.R).Clear();
                    row += self.R;
                }
                new Span<float>(row, (int)(d + self.Ld - row)).Clear();
            });
            return dst;
        }
    }
}
