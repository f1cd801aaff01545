// CUDA-tier tensor-core tiles (f16/bf16; f32 as TF32) by inline PTX mma.sync, their emulator model, and the GEMMs.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// C[b] = α·op(A[b])·op(B[b]) + β·C[b] (+ bias[n]) with GemmShape's layout and GemmKernels.Args, for A and B of 16-bit
/// floats (f16 or bf16 bits in ushort), or of f32 rounded to TF32 (10-bit significands, to nearest with ties away from
/// zero, as cvt.rna.tf32.f32). Group (x, y) of 4 warps computes the 64×64 tile of C at rows 64·y, columns 64·x of batch
/// z; warp w owns its 32×32 quarter (rows 32·(w/2), columns 32·(w%2)) as 2×4 tiles of 16×8, four f32 per lane each. Per
/// slab of 16 words the 128 threads stage op(A) as [row][word] and op(B) as [column][word] in shared memory, a word
/// being two consecutive depth values packed low-first (f16, bf16) or one TF32 value, which is how mma.sync takes A
/// (row-major) and B (column-major) fragments; loads read along whichever axis is contiguous in memory. The row stride
/// of 20 words keeps the 32 lanes' fragment loads (8 rows × 4 words) on 32 different banks. Each slab is two steps of 8
/// words (16 depth values of f16/bf16, 8 of TF32), each step 8 mma per warp. The products of two 16-bit floats, or of
/// two TF32 values, are exact in f32 (barring underflow and overflow), so beside the rounding to TF32 only the
/// accumulation order differs from the f32 kernel. The tile loop (Tiled) also runs the TF32 convolutions (Conv2d.cs),
/// whose operands are implicit matrices gathered value by value.
/// </summary>
public static class GemmMmaKernels
{
    const int Tile = 64, Words = 16, Stride = Words + 4, Warps = 4, Threads = 32 * Warps;

    /// <summary>The launch over s's tiles; modelled: with the dynamic shared memory the model of mma.sync needs (on the
    /// emulator, and for the _model kernels), else one unused element (ILGPU refuses a request of none).</summary>
    public static KernelConfig Config(GemmShape s, bool modelled) => TileConfig(s.M, s.N, s.Batch, modelled);

    /// <summary>Groups over the 64×64 tiles of a (rows, columns) product, batch of them, as Config.</summary>
    public static KernelConfig TileConfig(int rows, int columns, int batch, bool modelled) =>
        new(new Index3D((columns + Tile - 1) / Tile, (rows + Tile - 1) / Tile, batch), new Index3D(Threads, 1, 1),
            SharedMemoryConfig.RequestDynamic<uint>(modelled ? Threads * Registers : 1));

    [GpuKernel("gemm_bf16_mma", explicitlyGrouped: true)]
    public static void Bf16(ArrayView<float> c, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> bias, GemmKernels.Args p) =>
        Gemm(new Bf16TensorCores(), c, new Halves(a), new Halves(b), bias, p);   // c (batch, M, N); a, b per GemmShape, bf16 bits; bias (N)

    [GpuKernel("gemm_f16_mma", explicitlyGrouped: true)]
    public static void F16(ArrayView<float> c, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> bias, GemmKernels.Args p) =>
        Gemm(new F16TensorCores(), c, new Halves(a), new Halves(b), bias, p);    // the same, f16 bits

    /// <summary>The same kernel for GPUs without mma.sync m16n8k16 (compute capability below 8.0): the model of the
    /// instruction computes on the FP32 lanes, and the PTX holds no mma.</summary>
    [GpuKernel("gemm_bf16_mma_model", explicitlyGrouped: true)]
    public static void Bf16Model(ArrayView<float> c, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> bias, GemmKernels.Args p) =>
        Gemm(new Bf16Lanes(), c, new Halves(a), new Halves(b), bias, p);   // as Bf16

    [GpuKernel("gemm_f16_mma_model", explicitlyGrouped: true)]
    public static void F16Model(ArrayView<float> c, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> bias, GemmKernels.Args p) =>
        Gemm(new F16Lanes(), c, new Halves(a), new Halves(b), bias, p);    // as F16

    /// <summary>f32 inputs on TF32 tensor cores (--allow_tf32, compute capability 8.0+).</summary>
    [GpuKernel("gemm_tf32_mma", explicitlyGrouped: true)]
    public static void Tf32(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias, GemmKernels.Args p) =>
        Gemm(new Tf32TensorCores(), c, new Tf32Rounded(a), new Tf32Rounded(b), bias, p);   // c (batch, M, N); a, b per GemmShape; bias (N)

    static void Gemm<TMma, TSource>(TMma mma, ArrayView<float> c, TSource a, TSource b, ArrayView<float> bias, GemmKernels.Args p) // c (batch, M, N); a, b per GemmShape; bias (N)
        where TMma : struct, IMma where TSource : struct, ISource
    {
        long batch = Grid.IdxZ;
        Tiled(mma, Matrix(a, batch * p.StrideA, p.M, p.K, p.TransA == 0),   // A (M, K), or (K, M) transposed
            Matrix(b, batch * p.StrideB, p.N, p.K, p.TransB != 0),           // B (N, K) transposed, or (K, N)
            new GemmOutput(c, bias, p, batch * p.StrideC), p.K);
    }

    /// <summary>The tile loop of every tensor-core kernel: group (x, y) stages A's 64 rows from 64·y and B's 64 columns
    /// from 64·x slab by slab, its warps run the steps, and each value of the tile goes to output (which drops those
    /// past the edges). a and b hold as many depth values per word (a's PerWord steps the loop).</summary>
    internal static void Tiled<TMma, TA, TB, TOut>(TMma mma, Operand<TA> a, Operand<TB> b, TOut output, int depth)
        where TMma : struct, IMma where TA : struct, IWords where TB : struct, IWords where TOut : struct, IOutput
    {
        var aSlab = SharedMemory.Allocate<uint>(Tile * Stride);   // [row][word]
        var bSlab = SharedMemory.Allocate<uint>(Tile * Stride);   // [column][word]
        var exchange = SharedMemory.GetDynamic<uint>();   // (Threads, Registers) for the model, empty on tensor cores
        int thread = Group.IdxX, lane = Warp.LaneIdx, warp = Warp.WarpIdx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile, wr = warp / 2 * 32, wc = warp % 2 * 32;
        var tile = new WarpTile();
        WarpTile.Start(mma);
        for (int k0 = 0; k0 < depth; k0 += Words * a.PerWord)
        {
            a.Stage(aSlab, row0, k0, thread);
            b.Stage(bSlab, col0, k0, thread);
            Group.Barrier();
            tile.AddStep(mma, aSlab, bSlab, exchange, wr, wc, 0, lane);
            tile.AddStep(mma, aSlab, bSlab, exchange, wr, wc, 8, lane);
            Group.Barrier();
        }
        tile.Finish(mma);
        int row = row0 + wr + lane / 4, col = col0 + wc + lane % 4 * 2;
        Store(output, row, col, tile.C00); Store(output, row, col + 8, tile.C01);
        Store(output, row, col + 16, tile.C02); Store(output, row, col + 24, tile.C03);
        Store(output, row + 16, col, tile.C10); Store(output, row + 16, col + 8, tile.C11);
        Store(output, row + 16, col + 16, tile.C12); Store(output, row + 16, col + 24, tile.C13);
    }

    /// <summary>One 16×8 tile's values of this lane: rows row and row + 8, columns col and col + 1.</summary>
    static void Store<TOut>(TOut output, int row, int col, Fragment f) where TOut : struct, IOutput
    {
        output.Store(row, col, f.C0);
        output.Store(row, col + 1, f.C1);
        output.Store(row + 8, col, f.C2);
        output.Store(row + 8, col + 1, f.C3);
    }

    /// <summary>The words of an implicit (rows, depth) matrix: A's rows, or B's columns.</summary>
    internal interface IWords
    {
        /// <summary>Depth values per 32-bit word.</summary>
        int PerWord { get; }
        /// <summary>The word at row (or column) row and depth k, both inside the extents; depth values past the last
        /// one are zero in it.</summary>
        uint Word(int row, int k);
    }

    /// <summary>An operand of Tiled: the words of rows below extent and depths below depth; kFast: consecutive threads
    /// take consecutive depths, else consecutive rows (whichever reads memory in order).</summary>
    internal readonly struct Operand<TWords>(TWords words, int extent, int depth, bool kFast) where TWords : struct, IWords
    {
        public int PerWord => words.PerWord;

        /// <summary>slab[r·Stride + i] = the word of row origin + r at depth k0 + i·PerWord, zero past the extent or the
        /// depth; the group's threads share the work.</summary>
        public void Stage(ArrayView<uint> slab, int origin, int k0, int thread) // slab (Tile, Stride), shared
        {
            for (int e = thread; e < Tile * Words; e += Threads)
            {
                int r = kFast ? e / Words : e % Tile, i = kFast ? e % Words : e / Tile;
                int gr = origin + r, gk = k0 + words.PerWord * i;
                slab[r * Stride + i] = gr < extent && gk < depth ? words.Word(gr, gk) : 0u;
            }
        }
    }

    /// <summary>Where each value of C goes; it drops rows and columns past the edges.</summary>
    internal interface IOutput
    {
        void Store(int row, int col, float v);
    }

    /// <summary>A GEMM operand: x (extent, depth) row-major from xBase when kContiguous, else (depth, extent); either
    /// way consecutive threads read consecutive addresses.</summary>
    static Operand<MatrixWords<TSource>> Matrix<TSource>(TSource x, long xBase, int extent, int depth, bool kContiguous)
        where TSource : struct, ISource => new(new(x, xBase, extent, depth, kContiguous), extent, depth, kContiguous);

    readonly struct MatrixWords<TSource>(TSource x, long xBase, int extent, int depth, bool kContiguous) : IWords where TSource : struct, ISource
    {
        public int PerWord => x.PerWord;
        public uint Word(int row, int k) =>
            x.Word(xBase + (kContiguous ? (long)row * depth + k : (long)k * extent + row), kContiguous ? 1 : extent, k + 1 < depth);
    }

    /// <summary>C ← α·C_tile + β·C (+ bias) for the GEMM, from cBase.</summary>
    readonly struct GemmOutput(ArrayView<float> c, ArrayView<float> bias, GemmKernels.Args p, long cBase) : IOutput
    {
        public void Store(int row, int col, float v)
        {
            if (row < p.M) GemmKernels.Store(c, bias, p, cBase + (long)row * p.N, col, v);
        }
    }

    /// <summary>A TF32 operand gathered value by value (a convolution's implicit matrix), as Operand.</summary>
    internal static Operand<Tf32Words<TGather>> Gathered<TGather>(TGather g, int extent, int depth, bool kFast)
        where TGather : struct, IGather => new(new(g), extent, depth, kFast);

    internal readonly struct Tf32Words<TGather>(TGather g) : IWords where TGather : struct, IGather
    {
        public int PerWord => 1;
        public uint Word(int row, int k) => RoundToTf32(Interop.FloatAsInt(g.At(row, k)));
    }

    /// <summary>One value of an implicit matrix, at a row (or column) and a depth inside its extents.</summary>
    internal interface IGather
    {
        float At(int row, int k);
    }

    /// <summary>Where the staged words come from.</summary>
    internal interface ISource
    {
        /// <summary>Depth values per 32-bit word.</summary>
        int PerWord { get; }
        /// <summary>The word of the values at, at + step (if second: another depth value is there).</summary>
        uint Word(long at, long step, bool second);
    }

    /// <summary>f16 or bf16 bits: two depth values, the first in the low half.</summary>
    readonly struct Halves(ArrayView<ushort> x) : ISource
    {
        public int PerWord => 2;
        public uint Word(long at, long step, bool second) => x[at] | (second ? (uint)x[at + step] << 16 : 0u);
    }

    /// <summary>f32 values rounded to TF32.</summary>
    readonly struct Tf32Rounded(ArrayView<float> x) : ISource
    {
        public int PerWord => 1;
        public uint Word(long at, long step, bool second) => RoundToTf32(Interop.FloatAsInt(x[at]));
    }

    /// <summary>f32 bits rounded to TF32's 10-bit significand, to nearest with ties away from zero (cvt.rna.tf32.f32):
    /// adding half of the dropped 13 bits' range carries into the kept bits exactly when the magnitude rounds up, also
    /// into the exponent (the largest values become Inf). Inf keeps its bits; a NaN gets the quiet bit, so it stays a
    /// NaN when the tensor core reads only the top 19 bits.</summary>
    public static uint RoundToTf32(uint bits) => (bits & 0x7F800000) != 0x7F800000 ? (bits + 0x1000) & 0xFFFFE000
        : (bits & 0x007FFFFF) == 0 ? bits : bits | 0x00400000;

    /// <summary>A lane's four f32 of a 16×8 tile of C: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1) for lane
    /// 4g + t.</summary>
    public struct Fragment
    {
        public float C0, C1, C2, C3;
    }

    /// <summary>
    /// A warp's 32×32 of C: tile Cij at rows 16i, columns 8j of the quarter. On a GPU it lives in 32 PTX registers per
    /// lane (dbc0 … dbc31, four per tile in the order C00, C01, …, C13) that the inline assembly declares, accumulates
    /// and reads back at the end: ILGPU passes an inline-assembly output through local memory, which ptxas keeps (it
    /// does not promote .local to registers), so only the last read goes that way. (ILGPU reads % only before an
    /// operand number, so the names have none.) The registers are the kernel's because ILGPU inlines Start, AddStep and
    /// Finish into it, as its default (aggressive) inlining does. The fields hold the sums on the emulator, and the
    /// GPU's at the end.
    /// </summary>
    struct WarpTile
    {
        public Fragment C00, C01, C02, C03, C10, C11, C12, C13;

        const string Declare =
            ".reg .f32 dbc<32>;\n\t" +
            "mov.b32 dbc0, 0; mov.b32 dbc1, 0; mov.b32 dbc2, 0; mov.b32 dbc3, 0;\n\t" +
            "mov.b32 dbc4, 0; mov.b32 dbc5, 0; mov.b32 dbc6, 0; mov.b32 dbc7, 0;\n\t" +
            "mov.b32 dbc8, 0; mov.b32 dbc9, 0; mov.b32 dbc10, 0; mov.b32 dbc11, 0;\n\t" +
            "mov.b32 dbc12, 0; mov.b32 dbc13, 0; mov.b32 dbc14, 0; mov.b32 dbc15, 0;\n\t" +
            "mov.b32 dbc16, 0; mov.b32 dbc17, 0; mov.b32 dbc18, 0; mov.b32 dbc19, 0;\n\t" +
            "mov.b32 dbc20, 0; mov.b32 dbc21, 0; mov.b32 dbc22, 0; mov.b32 dbc23, 0;\n\t" +
            "mov.b32 dbc24, 0; mov.b32 dbc25, 0; mov.b32 dbc26, 0; mov.b32 dbc27, 0;\n\t" +
            "mov.b32 dbc28, 0; mov.b32 dbc29, 0; mov.b32 dbc30, 0; mov.b32 dbc31, 0;\n\t";

        const string Read =
            "mov.f32 %0, dbc0; mov.f32 %1, dbc1; mov.f32 %2, dbc2; mov.f32 %3, dbc3;\n\t" +
            "mov.f32 %4, dbc4; mov.f32 %5, dbc5; mov.f32 %6, dbc6; mov.f32 %7, dbc7;\n\t" +
            "mov.f32 %8, dbc8; mov.f32 %9, dbc9; mov.f32 %10, dbc10; mov.f32 %11, dbc11;\n\t" +
            "mov.f32 %12, dbc12; mov.f32 %13, dbc13; mov.f32 %14, dbc14; mov.f32 %15, dbc15;\n\t" +
            "mov.f32 %16, dbc16; mov.f32 %17, dbc17; mov.f32 %18, dbc18; mov.f32 %19, dbc19;\n\t" +
            "mov.f32 %20, dbc20; mov.f32 %21, dbc21; mov.f32 %22, dbc22; mov.f32 %23, dbc23;\n\t" +
            "mov.f32 %24, dbc24; mov.f32 %25, dbc25; mov.f32 %26, dbc26; mov.f32 %27, dbc27;\n\t" +
            "mov.f32 %28, dbc28; mov.f32 %29, dbc29; mov.f32 %30, dbc30; mov.f32 %31, dbc31;\n\t";

        /// <summary>Declares and zeroes the accumulator registers (on tensor cores; the fields start at
        /// zero).</summary>
        public static void Start<TMma>(TMma mma) where TMma : struct, IMma
        {
            if (OnTensorCores(mma)) CudaAsm.Emit(Declare);
        }

        /// <summary>C += the warp's rows of the A slab · its columns of the B slab over words step … step + 7. Lane
        /// 4g + t holds the A words t and t + 4 of rows g and g + 8, and the B words t and t + 4 of column g. On the
        /// emulator every lane publishes its 16 registers in exchange and the model reads them.</summary>
        public void AddStep<TMma>(TMma mma, ArrayView<uint> aSlab, ArrayView<uint> bSlab, ArrayView<uint> exchange, // (Tile, Stride) each, shared; (Threads, Registers), shared
            int wr, int wc, int step, int lane) where TMma : struct, IMma
        {
            int g = lane / 4, i = step + lane % 4;
            int r0 = (wr + g) * Stride + i, r1 = r0 + 16 * Stride;
            uint a00 = aSlab[r0], a01 = aSlab[r0 + 8 * Stride], a02 = aSlab[r0 + 4], a03 = aSlab[r0 + 8 * Stride + 4];
            uint a10 = aSlab[r1], a11 = aSlab[r1 + 8 * Stride], a12 = aSlab[r1 + 4], a13 = aSlab[r1 + 8 * Stride + 4];
            int n = (wc + g) * Stride + i;
            uint b00 = bSlab[n], b01 = bSlab[n + 4], b10 = bSlab[n + 8 * Stride], b11 = bSlab[n + 8 * Stride + 4];
            uint b20 = bSlab[n + 16 * Stride], b21 = bSlab[n + 16 * Stride + 4], b30 = bSlab[n + 24 * Stride], b31 = bSlab[n + 24 * Stride + 4];
            if (OnTensorCores(mma))
            {
                if (mma.Tf32) CudaAsm.Emit(Tf32Step, Pair(a00, a01), Pair(a02, a03), Pair(a10, a11), Pair(a12, a13), Pair(b00, b01), Pair(b10, b11), Pair(b20, b21), Pair(b30, b31));
                else if (mma.F16) CudaAsm.Emit(F16Step, Pair(a00, a01), Pair(a02, a03), Pair(a10, a11), Pair(a12, a13), Pair(b00, b01), Pair(b10, b11), Pair(b20, b21), Pair(b30, b31));
                else CudaAsm.Emit(Bf16Step, Pair(a00, a01), Pair(a02, a03), Pair(a10, a11), Pair(a12, a13), Pair(b00, b01), Pair(b10, b11), Pair(b20, b21), Pair(b30, b31));
                return;
            }
            var mine = exchange.SubView(Group.IdxX * Registers, Registers);
            mine[0] = a00; mine[1] = a01; mine[2] = a02; mine[3] = a03; mine[4] = a10; mine[5] = a11; mine[6] = a12; mine[7] = a13;
            mine[8] = b00; mine[9] = b01; mine[10] = b10; mine[11] = b11; mine[12] = b20; mine[13] = b21; mine[14] = b30; mine[15] = b31;
            Warp.Barrier();
            var warp = exchange.SubView((Group.IdxX - lane) * Registers, 32 * Registers);
            C00 = Model(C00, warp, 0, 0, mma); C01 = Model(C01, warp, 0, 1, mma);
            C02 = Model(C02, warp, 0, 2, mma); C03 = Model(C03, warp, 0, 3, mma);
            C10 = Model(C10, warp, 1, 0, mma); C11 = Model(C11, warp, 1, 1, mma);
            C12 = Model(C12, warp, 1, 2, mma); C13 = Model(C13, warp, 1, 3, mma);
            Warp.Barrier();
        }

        /// <summary>Reads the accumulator registers into the fields (on tensor cores).</summary>
        public void Finish<TMma>(TMma mma) where TMma : struct, IMma
        {
            if (!OnTensorCores(mma)) return;
            Output<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default,
                c8 = default, c9 = default, c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default,
                c16 = default, c17 = default, c18 = default, c19 = default, c20 = default, c21 = default, c22 = default, c23 = default,
                c24 = default, c25 = default, c26 = default, c27 = default, c28 = default, c29 = default, c30 = default, c31 = default;
            CudaAsm.EmitRef(Read, ref c0, ref c1, ref c2, ref c3, ref c4, ref c5, ref c6, ref c7, ref c8, ref c9, ref c10, ref c11,
                ref c12, ref c13, ref c14, ref c15, ref c16, ref c17, ref c18, ref c19, ref c20, ref c21, ref c22, ref c23, ref c24,
                ref c25, ref c26, ref c27, ref c28, ref c29, ref c30, ref c31);
            C00 = new Fragment { C0 = c0.Value, C1 = c1.Value, C2 = c2.Value, C3 = c3.Value };
            C01 = new Fragment { C0 = c4.Value, C1 = c5.Value, C2 = c6.Value, C3 = c7.Value };
            C02 = new Fragment { C0 = c8.Value, C1 = c9.Value, C2 = c10.Value, C3 = c11.Value };
            C03 = new Fragment { C0 = c12.Value, C1 = c13.Value, C2 = c14.Value, C3 = c15.Value };
            C10 = new Fragment { C0 = c16.Value, C1 = c17.Value, C2 = c18.Value, C3 = c19.Value };
            C11 = new Fragment { C0 = c20.Value, C1 = c21.Value, C2 = c22.Value, C3 = c23.Value };
            C12 = new Fragment { C0 = c24.Value, C1 = c25.Value, C2 = c26.Value, C3 = c27.Value };
            C13 = new Fragment { C0 = c28.Value, C1 = c29.Value, C2 = c30.Value, C3 = c31.Value };
        }

        /// <summary>Two 32-bit fragment registers as one 64-bit operand, low first (ILGPU's inline assembly takes at
        /// most ten values).</summary>
        static ulong Pair(uint lo, uint hi) => lo | (ulong)hi << 32;
    }

    /// <summary>The input type (bf16, f16 or TF32), and whether mma.sync runs it (on a GPU of compute capability 8.0 or
    /// newer) or the model does (on the emulator, and in the _model kernels).</summary>
    public interface IMma
    {
        bool F16 { get; }
        bool Tf32 { get; }
        bool TensorCores { get; }
    }

    readonly struct Bf16TensorCores : IMma { public bool F16 => false; public bool Tf32 => false; public bool TensorCores => true; }
    readonly struct F16TensorCores : IMma { public bool F16 => true; public bool Tf32 => false; public bool TensorCores => true; }
    internal readonly struct Tf32TensorCores : IMma { public bool F16 => false; public bool Tf32 => true; public bool TensorCores => true; }
    readonly struct Bf16Lanes : IMma { public bool F16 => false; public bool Tf32 => false; public bool TensorCores => false; }
    readonly struct F16Lanes : IMma { public bool F16 => true; public bool Tf32 => false; public bool TensorCores => false; }

    static bool OnTensorCores<TMma>(TMma mma) where TMma : struct, IMma => CudaAsm.IsSupported && mma.TensorCores;

    /// <summary>The 8 mma.sync of one step, for each input type: operands %0-%3 are A's registers of the two row tiles
    /// and %4-%7 B's of the four column tiles, two registers to an operand (split inside the block); tile ij's products
    /// (operands Operandsij) add to dbc(16i + 4j) … dbc(16i + 4j + 3). Each is one constant, as ILGPU needs.</summary>
    const string Bf16Step = Unpack + MmaBf16 + Operands00 + MmaBf16 + Operands01 + MmaBf16 + Operands02 + MmaBf16 + Operands03 + MmaBf16 + Operands10 + MmaBf16 + Operands11 + MmaBf16 + Operands12 + MmaBf16 + Operands13 + "}\n\t";
    const string F16Step = Unpack + MmaF16 + Operands00 + MmaF16 + Operands01 + MmaF16 + Operands02 + MmaF16 + Operands03 + MmaF16 + Operands10 + MmaF16 + Operands11 + MmaF16 + Operands12 + MmaF16 + Operands13 + "}\n\t";
    const string Tf32Step = Unpack + MmaTf32 + Operands00 + MmaTf32 + Operands01 + MmaTf32 + Operands02 + MmaTf32 + Operands03 + MmaTf32 + Operands10 + MmaTf32 + Operands11 + MmaTf32 + Operands12 + MmaTf32 + Operands13 + "}\n\t";
    const string MmaBf16 = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", MmaF16 = "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
        MmaTf32 = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
    const string Unpack =
        "{ .reg .b32 mma_a<8>, mma_b<8>;\n\t" +
        "mov.b64 {mma_a0,mma_a1}, %0; mov.b64 {mma_a2,mma_a3}, %1; mov.b64 {mma_a4,mma_a5}, %2; mov.b64 {mma_a6,mma_a7}, %3;\n\t" +
        "mov.b64 {mma_b0,mma_b1}, %4; mov.b64 {mma_b2,mma_b3}, %5; mov.b64 {mma_b4,mma_b5}, %6; mov.b64 {mma_b6,mma_b7}, %7;\n\t";
    const string Operands00 = " {dbc0,dbc1,dbc2,dbc3}, {mma_a0,mma_a1,mma_a2,mma_a3}, {mma_b0,mma_b1}, {dbc0,dbc1,dbc2,dbc3};\n\t";
    const string Operands01 = " {dbc4,dbc5,dbc6,dbc7}, {mma_a0,mma_a1,mma_a2,mma_a3}, {mma_b2,mma_b3}, {dbc4,dbc5,dbc6,dbc7};\n\t";
    const string Operands02 = " {dbc8,dbc9,dbc10,dbc11}, {mma_a0,mma_a1,mma_a2,mma_a3}, {mma_b4,mma_b5}, {dbc8,dbc9,dbc10,dbc11};\n\t";
    const string Operands03 = " {dbc12,dbc13,dbc14,dbc15}, {mma_a0,mma_a1,mma_a2,mma_a3}, {mma_b6,mma_b7}, {dbc12,dbc13,dbc14,dbc15};\n\t";
    const string Operands10 = " {dbc16,dbc17,dbc18,dbc19}, {mma_a4,mma_a5,mma_a6,mma_a7}, {mma_b0,mma_b1}, {dbc16,dbc17,dbc18,dbc19};\n\t";
    const string Operands11 = " {dbc20,dbc21,dbc22,dbc23}, {mma_a4,mma_a5,mma_a6,mma_a7}, {mma_b2,mma_b3}, {dbc20,dbc21,dbc22,dbc23};\n\t";
    const string Operands12 = " {dbc24,dbc25,dbc26,dbc27}, {mma_a4,mma_a5,mma_a6,mma_a7}, {mma_b4,mma_b5}, {dbc24,dbc25,dbc26,dbc27};\n\t";
    const string Operands13 = " {dbc28,dbc29,dbc30,dbc31}, {mma_a4,mma_a5,mma_a6,mma_a7}, {mma_b6,mma_b7}, {dbc28,dbc29,dbc30,dbc31};\n\t";

    /// <summary>Fragment registers a lane holds per step: A's four for each of the two row tiles, B's two for each of
    /// the four column tiles.</summary>
    const int Registers = 16;

    /// <summary>d + what mma.sync computes for tile Cij, from the warp's fragment registers (warp: lane l's at l·16 +
    /// …, A's of row tile i at 4i, B's of column tile j at 8 + 2j), where there is no tensor core. A lane's registers
    /// hold the words (row g, word t), (g + 8, t), (g, t + 4), (g + 8, t + 4) of A and (column g, word t), (g, t + 4)
    /// of B, for lane 4g + t; so for each word w of the step, this lane's rows g and g + 8 come from lane 4g + w % 4
    /// and its columns 2t and 2t + 1 from lanes 8t + w % 4 and 8t + 4 + w % 4.</summary>
    static Fragment Model<TMma>(Fragment d, ArrayView<uint> warp, int i, int j, TMma mma) where TMma : struct, IMma // warp (32, Registers), shared
    {
        int lane = Warp.LaneIdx, g = lane / 4, t = lane % 4;
        for (int word = 0; word < 8; word++)
        {
            int q = word % 4, high = word / 4;
            uint rowG = warp[(4 * g + q) * Registers + 4 * i + 2 * high], rowG8 = warp[(4 * g + q) * Registers + 4 * i + 2 * high + 1];
            uint col0 = warp[(8 * t + q) * Registers + 8 + 2 * j + high], col1 = warp[(8 * t + 4 + q) * Registers + 8 + 2 * j + high];
            d.C0 += Dot(rowG, col0, mma); d.C1 += Dot(rowG, col1, mma);
            d.C2 += Dot(rowG8, col0, mma); d.C3 += Dot(rowG8, col1, mma);
        }
        return d;
    }

    /// <summary>The sum of products of two words' values: one TF32 product, or two of f16/bf16 halves.</summary>
    static float Dot<TMma>(uint x, uint y, TMma mma) where TMma : struct, IMma => mma.Tf32
        ? Interop.IntAsFloat(x) * Interop.IntAsFloat(y)
        : Widen(x & 0xFFFF, mma.F16) * Widen(y & 0xFFFF, mma.F16) + Widen(x >> 16, mma.F16) * Widen(y >> 16, mma.F16);

    static float Widen(uint bits, bool f16) => f16 ? (float)Interop.IntAsFloat((ushort)bits) : Interop.IntAsFloat(bits << 16);
}
