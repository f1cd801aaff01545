// CUDA-tier conv2d as implicit GEMM: forward, grad input and grad weight on FP32 lanes or TF32 tensor cores; grad bias.
using ILGPU.Runtime;
using ILGPU;
using static DreamBooth.Kernels.Ilgpu.GemmMmaKernels;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _conv;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convGradInput, _convGradWeight;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convGradBias;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convTf32;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convGradInputTf32, _convGradWeightTf32;

    /// <summary>The TF32 kernels' groups over a (rows, columns) implicit product.</summary>
    KernelConfig Tf32Tiles(int rows, int columns) => GemmMmaKernels.TileConfig(rows, columns, 1, MmaModelled);

    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s)
    {
        s.ValidateForward(y, x, w, bias);
        const string op = "conv2d";
        var args = Conv2dKernels.Args.From(s, bias != null);
        if (Tf32)
        {
            _convTf32 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.ForwardTf32);
            _convTf32(Tf32Tiles(s.OutC, s.N * s.OutH * s.OutW), F(op, y), F(op, x), F(op, w), FOrPlaceholder(op, bias), args);
            return;
        }
        _conv ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.Forward);
        _conv(Conv2dKernels.ForwardConfig(s), F(op, y), F(op, x), F(op, w), FOrPlaceholder(op, bias), args);
    }

    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s)
    {
        s.ValidateGradInput(dx, dy, w);
        const string op = "conv2d grad input";
        if (Tf32)
        {
            _convGradInputTf32 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradInputTf32);
            _convGradInputTf32(Tf32Tiles(s.InC, s.N * s.H * s.W), F(op, dx), F(op, dy), F(op, w), Conv2dKernels.Args.From(s, false));
            return;
        }
        _convGradInput ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradInput);
        _convGradInput(Conv2dKernels.GradInputConfig(s), F(op, dx), F(op, dy), F(op, w), Conv2dKernels.Args.From(s, false));
    }

    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s)
    {
        s.ValidateGradWeight(dw, dbias, dy, x);
        const string op = "conv2d grad weight";
        var args = Conv2dKernels.Args.From(s, dbias != null);
        if (Tf32)
        {
            _convGradWeightTf32 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradWeightTf32);
            _convGradWeightTf32(Tf32Tiles(s.OutC, s.InC * s.KH * s.KW), F(op, dw), F(op, dy), F(op, x), args);
        }
        else
        {
            _convGradWeight ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradWeight);
            _convGradWeight(Conv2dKernels.GradWeightConfig(s), F(op, dw), F(op, dy), F(op, x), args);
        }
        if (dbias == null) return;
        _convGradBias ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradBias);
        _convGradBias(Conv2dKernels.GradBiasConfig(s), F(op, dbias), F(op, dy), args);
    }
}

/// <summary>
/// Each convolution is a GEMM whose operand built from an image is never materialised: the 16×64 slab a group needs is
/// gathered from x (or dy) straight into shared memory with the stride/pad arithmetic, zeros where the window leaves the
/// image. The tile machinery is GemmKernels.Tiled's: a group of 16×16 threads owns a 64×64 tile, the reduction runs in
/// slabs of 16, each thread accumulates a 4×4 block (rows ty + 16i, columns tx + 16j) in registers.
///   forward      y (OutC, N·OH·OW) = w (OutC, InC·KH·KW) · cols(x)              + bias
///   grad input   dx (InC, N·H·W)    = wᵀ (InC, OutC·KH·KW) · taps(dy)            (a gather: no atomics, dx overwritten)
///   grad weight  dw (OutC, InC·KH·KW) += dy (OutC, N·OH·OW) · cols(x)ᵀ           (reduction over N·OH·OW)
/// Columns index the batch and pixels together, so N·OH·OW, N·H·W, InC·KH·KW and OutC·KH·KW must stay below 2^31;
/// element offsets into x, y and dy are computed in long. Under AllowTf32 the same three products run on
/// GemmMmaKernels.Tiled (128 threads, mma.sync fragments), their operands gathered by the same helpers and rounded to
/// TF32 (ForwardTf32, GradInputTf32, GradWeightTf32).
/// </summary>
public static class Conv2dKernels
{
    const int Tile = Block4x4.Tile, Slab = Block4x4.Slab, Threads = 16, GroupSize = Threads * Threads, BiasGroup = 256;

    /// <summary>The shape with the products the kernels reuse: KHW = KH·KW, Pixels = OH·OW, ImagePixels = H·W.</summary>
    public readonly record struct Args(int N, int InC, int H, int W, int OutC, int KH, int KW, int Stride, int Pad,
        int OH, int OW, int KHW, int Pixels, int ImagePixels, int HasBias)
    {
        public static Args From(in ConvShape s, bool hasBias) => new(s.N, s.InC, s.H, s.W, s.OutC, s.KH, s.KW, s.Stride, s.Pad,
            s.OutH, s.OutW, s.KH * s.KW, s.OutH * s.OutW, s.H * s.W, hasBias ? 1 : 0);
    }

    /// <summary>Forward: tiles of (OutC rows, N·OH·OW columns).</summary>
    public static KernelConfig ForwardConfig(in ConvShape s) => TileConfig(s.OutC, s.N * s.OutH * s.OutW);

    /// <summary>Grad input: tiles of (InC rows, N·H·W columns).</summary>
    public static KernelConfig GradInputConfig(in ConvShape s) => TileConfig(s.InC, s.N * s.H * s.W);

    /// <summary>Grad weight: tiles of (OutC rows, InC·KH·KW columns).</summary>
    public static KernelConfig GradWeightConfig(in ConvShape s) => TileConfig(s.OutC, s.InC * s.KH * s.KW);

    /// <summary>Grad bias: one group per output channel.</summary>
    public static KernelConfig GradBiasConfig(in ConvShape s) => new(new Index1D(s.OutC), new Index1D(BiasGroup));

    static KernelConfig TileConfig(int rows, int columns) =>
        new(new Index2D((columns + Tile - 1) / Tile, (rows + Tile - 1) / Tile), new Index2D(Threads, Threads));

    /// <summary>y = conv(x, w) + bias. Per slab, the A slab is 64 filters × 16 (c, kh, kw) taps read along the contiguous
    /// tap axis of w; the B slab is 16 taps × 64 output pixels gathered from x: each thread keeps one column (its pixel's
    /// window origin is decoded once) and fills 4 of its taps, so a warp reads 32 neighbouring pixels of one input row.</summary>
    [GpuKernel("conv2d_f32_implicit_gemm", explicitlyGrouped: true)]
    public static void Forward(
        ArrayView<float> y,     // (N, OutC, OH, OW)
        ArrayView<float> x,     // (N, InC, H, W)
        ArrayView<float> w,     // (OutC, InC, KH, KW)
        ArrayView<float> bias,  // (OutC), read when HasBias
        Args p)
    {
        var aSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [tap][filter]
        var bSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [tap][pixel]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int m = p.OutC, k = p.InC * p.KHW, cols = p.N * p.Pixels;
        // The column this thread gathers for the B slab, decoded once: image n, window origin (ih0, iw0).
        int myCol = thread % Tile, myTap = thread / Tile, gcol = col0 + myCol;
        bool colOk = gcol < cols;
        int n = colOk ? gcol / p.Pixels : 0, pix = gcol - n * p.Pixels, oh = pix / p.OW, ow = pix - oh * p.OW;
        int ih0 = oh * p.Stride - p.Pad, iw0 = ow * p.Stride - p.Pad;
        long xImage = (long)n * p.InC * p.ImagePixels;
        var block = new Block4x4();
        for (int k0 = 0; k0 < k; k0 += Slab)
        {
            for (int e = thread; e < Slab * Tile; e += GroupSize)
            {
                int r = e / Slab, kk = e % Slab, gr = row0 + r, gk = k0 + kk;
                aSlab[kk * Tile + r] = gr < m && gk < k ? w[(long)gr * k + gk] : 0f;
            }
            for (int kk = myTap; kk < Slab; kk += GroupSize / Tile)
                bSlab[kk * Tile + myCol] = colOk ? GatherX(x, p, xImage, ih0, iw0, k0 + kk) : 0f;
            Group.Barrier();
            block.AddSlab(aSlab, bSlab, ty, tx);
            Group.Barrier();
        }
        StoreY(y, bias, p, row0 + ty, col0 + tx, block.C00, block.C01, block.C02, block.C03);
        StoreY(y, bias, p, row0 + ty + 16, col0 + tx, block.C10, block.C11, block.C12, block.C13);
        StoreY(y, bias, p, row0 + ty + 32, col0 + tx, block.C20, block.C21, block.C22, block.C23);
        StoreY(y, bias, p, row0 + ty + 48, col0 + tx, block.C30, block.C31, block.C32, block.C33);
    }

    /// <summary>cols(x)[tap, ·] for one window: x[n, c, ih0 + kh, iw0 + kw] with tap = (c, kh, kw), zero outside the image
    /// or past the last tap.</summary>
    static float GatherX(ArrayView<float> x, Args p, long xImage, int ih0, int iw0, int tap)
    {
        if (tap >= p.InC * p.KHW) return 0f;
        int c = tap / p.KHW, r = tap - c * p.KHW, kh = r / p.KW, kw = r - kh * p.KW;
        int ih = ih0 + kh, iw = iw0 + kw;
        if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0f;
        return x[xImage + (long)c * p.ImagePixels + ih * p.W + iw];
    }

    /// <summary>Forward epilogue for one filter row o: GEMM columns col + 16j are pixels of possibly different images.</summary>
    static void StoreY(ArrayView<float> y, ArrayView<float> bias, Args p, int o, int col, float v0, float v1, float v2, float v3)
    {
        if (o >= p.OutC) return;
        float b = p.HasBias != 0 ? bias[o] : 0f;
        StoreY(y, p, o, col, v0 + b);
        StoreY(y, p, o, col + 16, v1 + b);
        StoreY(y, p, o, col + 32, v2 + b);
        StoreY(y, p, o, col + 48, v3 + b);
    }

    static void StoreY(ArrayView<float> y, Args p, int o, int col, float v)
    {
        if (col >= p.N * p.Pixels) return;
        int n = col / p.Pixels, pix = col - n * p.Pixels;
        y[((long)n * p.OutC + o) * p.Pixels + pix] = v;
    }

    /// <summary>dx = Σ w · dy over the (o, kh, kw) whose window covers each input pixel, as a gather. The A slab is
    /// wᵀ: 64 input channels × 16 (o, kh, kw) taps; the B slab is 16 taps × 64 input pixels, each thread keeping one
    /// pixel and reading dy[n, o, (ih + P − kh)/S, (iw + P − kw)/S] where that division is exact and in range. At stride S
    /// only about 1/S² of the taps are non-zero for a given pixel; splitting dx into the S² phases would skip the rest.</summary>
    [GpuKernel("conv2d_f32_grad_input_implicit_gemm", explicitlyGrouped: true)]
    public static void GradInput(
        ArrayView<float> dx,    // (N, InC, H, W)
        ArrayView<float> dy,    // (N, OutC, OH, OW)
        ArrayView<float> w,     // (OutC, InC, KH, KW)
        Args p)
    {
        var aSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [tap][input channel]
        var bSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [tap][input pixel]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int m = p.InC, k = p.OutC * p.KHW, cols = p.N * p.ImagePixels;
        // The input pixel this thread gathers for, decoded once: image n, padded position (ih + P, iw + P).
        int myCol = thread % Tile, myTap = thread / Tile, gcol = col0 + myCol;
        bool colOk = gcol < cols;
        int n = colOk ? gcol / p.ImagePixels : 0, pix = gcol - n * p.ImagePixels, ih = pix / p.W, iw = pix - ih * p.W;
        long dyImage = (long)n * p.OutC * p.Pixels;
        var block = new Block4x4();
        for (int k0 = 0; k0 < k; k0 += Slab)
        {
            for (int e = thread; e < Slab * Tile; e += GroupSize)
            {
                // wᵀ[c, (o, kh, kw)] = w[o, c, kh, kw]: consecutive threads take consecutive (kh, kw) of one (o, c).
                int r = e / Slab, kk = e % Slab, gr = row0 + r, gk = k0 + kk;
                float v = 0f;
                if (gr < m && gk < k)
                {
                    int o = gk / p.KHW, khw = gk - o * p.KHW;
                    v = w[((long)o * p.InC + gr) * p.KHW + khw];
                }
                aSlab[kk * Tile + r] = v;
            }
            for (int kk = myTap; kk < Slab; kk += GroupSize / Tile)
                bSlab[kk * Tile + myCol] = colOk ? GatherDy(dy, p, dyImage, ih + p.Pad, iw + p.Pad, k0 + kk) : 0f;
            Group.Barrier();
            block.AddSlab(aSlab, bSlab, ty, tx);
            Group.Barrier();
        }
        StoreDx(dx, p, row0 + ty, col0 + tx, block.C00, block.C01, block.C02, block.C03);
        StoreDx(dx, p, row0 + ty + 16, col0 + tx, block.C10, block.C11, block.C12, block.C13);
        StoreDx(dx, p, row0 + ty + 32, col0 + tx, block.C20, block.C21, block.C22, block.C23);
        StoreDx(dx, p, row0 + ty + 48, col0 + tx, block.C30, block.C31, block.C32, block.C33);
    }

    /// <summary>taps(dy)[(o, kh, kw), ·] for one input pixel at padded position (ph, pw): the output (oh, ow) with
    /// oh·S + kh = ph and ow·S + kw = pw, or zero when no output's window puts tap (kh, kw) on this pixel.</summary>
    static float GatherDy(ArrayView<float> dy, Args p, long dyImage, int ph, int pw, int tap)
    {
        if (tap >= p.OutC * p.KHW) return 0f;
        int o = tap / p.KHW, r = tap - o * p.KHW, kh = r / p.KW, kw = r - kh * p.KW;
        int th = ph - kh, tw = pw - kw;
        if (th < 0 || tw < 0) return 0f;
        int oh = th / p.Stride, ow = tw / p.Stride;
        if (oh * p.Stride != th || ow * p.Stride != tw || oh >= p.OH || ow >= p.OW) return 0f;
        return dy[dyImage + (long)o * p.Pixels + oh * p.OW + ow];
    }

    static void StoreDx(ArrayView<float> dx, Args p, int c, int col, float v0, float v1, float v2, float v3)
    {
        if (c >= p.InC) return;
        StoreDx(dx, p, c, col, v0);
        StoreDx(dx, p, c, col + 16, v1);
        StoreDx(dx, p, c, col + 32, v2);
        StoreDx(dx, p, c, col + 48, v3);
    }

    static void StoreDx(ArrayView<float> dx, Args p, int c, int col, float v)
    {
        if (col >= p.N * p.ImagePixels) return;
        int n = col / p.ImagePixels, pix = col - n * p.ImagePixels;
        dx[((long)n * p.InC + c) * p.ImagePixels + pix] = v;
    }

    /// <summary>dw += dy · cols(x)ᵀ, reducing over the N·OH·OW output pixels in slabs of 16. Each thread keeps one pixel
    /// of the slab (decoded once per slab) and loads 4 filters of dy and 4 taps of x at it, so a half-warp reads 16
    /// consecutive pixels of a row. One group per 64×64 tile of dw runs the whole reduction (deterministic, no atomics).</summary>
    [GpuKernel("conv2d_f32_grad_weight_implicit_gemm", explicitlyGrouped: true)]
    public static void GradWeight(
        ArrayView<float> dw,    // (OutC, InC, KH, KW), accumulated into
        ArrayView<float> dy,    // (N, OutC, OH, OW)
        ArrayView<float> x,     // (N, InC, H, W)
        Args p)
    {
        var aSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [pixel][filter]
        var bSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [pixel][tap]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int m = p.OutC, k = p.InC * p.KHW, red = p.N * p.Pixels;
        int myPixel = thread % Slab, myRow = thread / Slab;
        var block = new Block4x4();
        for (int r0 = 0; r0 < red; r0 += Slab)
        {
            int gr = r0 + myPixel;
            bool pixOk = gr < red;
            int n = pixOk ? gr / p.Pixels : 0, pix = gr - n * p.Pixels, oh = pix / p.OW, ow = pix - oh * p.OW;
            int ih0 = oh * p.Stride - p.Pad, iw0 = ow * p.Stride - p.Pad;
            long dyAt = (long)n * p.OutC * p.Pixels + pix, xImage = (long)n * p.InC * p.ImagePixels;
            for (int i = myRow; i < Tile; i += GroupSize / Slab)
            {
                int o = row0 + i, tap = col0 + i;
                aSlab[myPixel * Tile + i] = pixOk && o < m ? dy[dyAt + (long)o * p.Pixels] : 0f;
                bSlab[myPixel * Tile + i] = pixOk ? GatherX(x, p, xImage, ih0, iw0, tap) : 0f;
            }
            Group.Barrier();
            block.AddSlab(aSlab, bSlab, ty, tx);
            Group.Barrier();
        }
        AddDw(dw, p, row0 + ty, col0 + tx, block.C00, block.C01, block.C02, block.C03);
        AddDw(dw, p, row0 + ty + 16, col0 + tx, block.C10, block.C11, block.C12, block.C13);
        AddDw(dw, p, row0 + ty + 32, col0 + tx, block.C20, block.C21, block.C22, block.C23);
        AddDw(dw, p, row0 + ty + 48, col0 + tx, block.C30, block.C31, block.C32, block.C33);
    }

    static void AddDw(ArrayView<float> dw, Args p, int o, int tap, float v0, float v1, float v2, float v3)
    {
        if (o >= p.OutC) return;
        long rowStart = (long)o * p.InC * p.KHW;
        AddDw(dw, p, rowStart, tap, v0);
        AddDw(dw, p, rowStart, tap + 16, v1);
        AddDw(dw, p, rowStart, tap + 32, v2);
        AddDw(dw, p, rowStart, tap + 48, v3);
    }

    static void AddDw(ArrayView<float> dw, Args p, long rowStart, int tap, float v)
    {
        if (tap < p.InC * p.KHW) dw[rowStart + tap] += v;
    }

    // ---- TF32 tensor cores (AllowTf32): the same three implicit GEMMs on GemmMmaKernels' tiles, operands rounded to TF32
    // as they are gathered, and the same epilogues ----

    /// <summary>Forward on TF32 tensor cores: A = w (OutC, InC·KH·KW), B = cols(x) gathered per pixel column.</summary>
    [GpuKernel("conv2d_tf32_implicit_gemm", explicitlyGrouped: true)]
    public static void ForwardTf32(ArrayView<float> y, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, Args p) // as Forward
    {
        int k = p.InC * p.KHW;
        Tiled(new Tf32TensorCores(), Gathered(new Weights(w, k), p.OutC, k, kFast: true),
            Gathered(new Windows(x, p), p.N * p.Pixels, k, kFast: false), new YOut(y, bias, p), k);
    }

    /// <summary>Grad input on TF32 tensor cores: A = wᵀ (InC, OutC·KH·KW), B = taps(dy) gathered per input
    /// pixel.</summary>
    [GpuKernel("conv2d_tf32_grad_input_implicit_gemm", explicitlyGrouped: true)]
    public static void GradInputTf32(ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> w, Args p) // as GradInput
    {
        int k = p.OutC * p.KHW;
        Tiled(new Tf32TensorCores(), Gathered(new WeightsTransposed(w, p), p.InC, k, kFast: true),
            Gathered(new Taps(dy, p), p.N * p.ImagePixels, k, kFast: false), new DxOut(dx, p), k);
    }

    /// <summary>Grad weight on TF32 tensor cores, accumulated into dw: A = dy (OutC, N·OH·OW), B = cols(x)ᵀ, both read
    /// along the pixels.</summary>
    [GpuKernel("conv2d_tf32_grad_weight_implicit_gemm", explicitlyGrouped: true)]
    public static void GradWeightTf32(ArrayView<float> dw, ArrayView<float> dy, ArrayView<float> x, Args p) // as GradWeight
    {
        int pixels = p.N * p.Pixels;
        Tiled(new Tf32TensorCores(), Gathered(new OutputRows(dy, p), p.OutC, pixels, kFast: true),
            Gathered(new Swapped<Windows>(new Windows(x, p)), p.InC * p.KHW, pixels, kFast: true), new DwOut(dw, p), pixels);
    }

    /// <summary>w (OutC, K) at (o, tap).</summary>
    readonly struct Weights(ArrayView<float> w, int k) : IGather
    {
        public float At(int o, int tap) => w[(long)o * k + tap];
    }

    /// <summary>wᵀ at (c, (o, kh, kw)) = w[o, c, kh, kw].</summary>
    readonly struct WeightsTransposed(ArrayView<float> w, Args p) : IGather
    {
        public float At(int c, int tap)
        {
            int o = tap / p.KHW;
            return w[((long)o * p.InC + c) * p.KHW + tap - o * p.KHW];
        }
    }

    /// <summary>cols(x) at (output pixel n·OH·OW + pix, tap): GatherX for that pixel's window.</summary>
    readonly struct Windows(ArrayView<float> x, Args p) : IGather
    {
        public float At(int col, int tap)
        {
            int n = col / p.Pixels, pix = col - n * p.Pixels, oh = pix / p.OW, ow = pix - oh * p.OW;
            return GatherX(x, p, (long)n * p.InC * p.ImagePixels, oh * p.Stride - p.Pad, ow * p.Stride - p.Pad, tap);
        }
    }

    /// <summary>taps(dy) at (input pixel n·H·W + pix, tap): GatherDy at that pixel's padded position.</summary>
    readonly struct Taps(ArrayView<float> dy, Args p) : IGather
    {
        public float At(int col, int tap)
        {
            int n = col / p.ImagePixels, pix = col - n * p.ImagePixels, ih = pix / p.W, iw = pix - ih * p.W;
            return GatherDy(dy, p, (long)n * p.OutC * p.Pixels, ih + p.Pad, iw + p.Pad, tap);
        }
    }

    /// <summary>dy as (OutC, N·OH·OW) at (o, n·OH·OW + pix).</summary>
    readonly struct OutputRows(ArrayView<float> dy, Args p) : IGather
    {
        public float At(int o, int r)
        {
            int n = r / p.Pixels;
            return dy[((long)n * p.OutC + o) * p.Pixels + r - n * p.Pixels];
        }
    }

    /// <summary>The transpose of g: At(row, k) = g.At(k, row).</summary>
    readonly struct Swapped<TGather>(TGather g) : IGather where TGather : struct, IGather
    {
        public float At(int row, int k) => g.At(k, row);
    }

    readonly struct YOut(ArrayView<float> y, ArrayView<float> bias, Args p) : IOutput
    {
        public void Store(int o, int col, float v)
        {
            if (o < p.OutC) StoreY(y, p, o, col, v + (p.HasBias != 0 ? bias[o] : 0f));
        }
    }

    readonly struct DxOut(ArrayView<float> dx, Args p) : IOutput
    {
        public void Store(int c, int col, float v)
        {
            if (c < p.InC) StoreDx(dx, p, c, col, v);
        }
    }

    readonly struct DwOut(ArrayView<float> dw, Args p) : IOutput
    {
        public void Store(int o, int tap, float v)
        {
            if (o < p.OutC) AddDw(dw, p, (long)o * p.InC * p.KHW, tap, v);
        }
    }

    /// <summary>dbias[o] += Σ_{n, oh, ow} dy[n, o, oh, ow]. Group o: its 256 threads stride over the N·OH·OW values
    /// (consecutive threads read consecutive pixels), reduce in registers, then across the group (RowReduce.Sum);
    /// thread 0 adds the total.</summary>
    [GpuKernel("conv2d_f32_grad_bias", explicitlyGrouped: true)]
    public static void GradBias(
        ArrayView<float> dbias, // (OutC), accumulated into
        ArrayView<float> dy,    // (N, OutC, OH, OW)
        Args p)
    {
        int o = Grid.IdxX, t = Group.IdxX;
        float sum = 0f;
        for (int n = 0; n < p.N; n++)
        {
            long plane = ((long)n * p.OutC + o) * p.Pixels;
            for (int pix = t; pix < p.Pixels; pix += Group.DimX)
                sum += dy[plane + pix];
        }
        float total = RowReduce.Sum(SharedMemory.Allocate<float>(RowReduce.MaxWarps), sum);
        if (t == 0 && o < p.OutC) dbias[o] += total;
    }
}
