// CUDA-tier GEMM: f32 on 64×64 tiles, 4×4 per thread; f16/bf16, and f32 as TF32, on tensor cores (GemmMma.cs).
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>? _gemm, _gemmTf32;
    Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>? _gemmF16, _gemmBf16;

    /// <summary>Whether f16/bf16 GEMMs, and f32 GEMMs and convolutions when TF32 is allowed, take the tensor-core
    /// kernels (on the emulator, which runs their model). False on a GPU below compute capability 8.0, which has no
    /// mma.sync m16n8k16 (and whose PTX JIT would reject one), or when the backend was made without tensor cores:
    /// f16/bf16 GEMMs then run the _model kernels, and AllowTf32 has no effect.</summary>
    public bool TensorCores => _tensorCores && !(Acc is CudaAccelerator { Architecture: var arch } && arch < CudaArchitecture.SM_80);

    /// <summary>f32 GEMMs and convolutions on TF32 tensor cores (diffusers' --allow_tf32): the inputs round to 10-bit
    /// significands, the products and sums stay f32. Off by default; no effect where the f16/bf16 GEMMs run the model
    /// (below compute capability 8.0, which has no TF32), except on the emulator, where the model is what the tests
    /// check.</summary>
    public bool AllowTf32 { get; set; }

    /// <summary>f32 GEMMs and convolutions take the TF32 kernels.</summary>
    bool Tf32 => AllowTf32 && TensorCores;

    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s)
    {
        s.Validate(c, a, b, bias);
        const string op = "gemm";
        ArrayView<float> vc = F(op, c), vbias = FOrPlaceholder(op, bias);
        switch (a.DType)
        {
            case DType.F32 when Tf32:
                _gemmTf32 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>(GemmMmaKernels.Tf32);
                Gemm(_gemmTf32, MmaConfig, vc, F(op, a), F(op, b), vbias, s, bias != null);
                break;
            case DType.F32:
                _gemm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>(GemmKernels.Tiled);
                Gemm(_gemm, GemmKernels.Config, vc, F(op, a), F(op, b), vbias, s, bias != null);
                break;
            case DType.F16:
                _gemmF16 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>(
                    TensorCores ? GemmMmaKernels.F16 : GemmMmaKernels.F16Model);
                Gemm(_gemmF16, MmaConfig, vc, Buf(op, a).U16, Buf(op, b).U16, vbias, s, bias != null);
                break;
            default:
                _gemmBf16 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>(
                    TensorCores ? GemmMmaKernels.Bf16 : GemmMmaKernels.Bf16Model);
                Gemm(_gemmBf16, MmaConfig, vc, Buf(op, a).U16, Buf(op, b).U16, vbias, s, bias != null);
                break;
        }
    }

    /// <summary>Whether a tensor-core launch runs the model of mma.sync: in the _model kernels, and on the
    /// emulator.</summary>
    bool MmaModelled => !TensorCores || Acc.AcceleratorType == AcceleratorType.CPU;

    KernelConfig MmaConfig(GemmShape s) => GemmMmaKernels.Config(s, modelled: MmaModelled);

    /// <summary>Launches one GEMM kernel (of A and B's element type T, grouped by config) over the batch.</summary>
    static void Gemm<T>(Action<KernelConfig, ArrayView<float>, ArrayView<T>, ArrayView<T>, ArrayView<float>, GemmKernels.Args> kernel,
        Func<GemmShape, KernelConfig> config, ArrayView<float> c, ArrayView<T> a, ArrayView<T> b, ArrayView<float> bias, in GemmShape s,
        bool hasBias) where T : unmanaged
    {
        if (s.Batch == 1 || s.BatchStrideC >= (long)s.M * s.N)
        {
            kernel(WithinGridLimits("gemm", config(s)), c, a, b, bias, GemmKernels.Args.From(s, hasBias));
            return;
        }
        // Batches whose C overlap (StrideC 0: a sum over the batch) would race inside one launch: run them in order,
        // which is exactly the sequential definition C ← α·A[b]B[b] + β·C (+ bias) for b = 0, 1, ...
        var one = s with { Batch = 1 };
        var oneConfig = WithinGridLimits("gemm", config(one));
        for (int i = 0; i < s.Batch; i++)
            kernel(oneConfig, c.SubView(i * s.BatchStrideC), a.SubView(i * s.BatchStrideA),
                b.SubView(i * s.BatchStrideB), bias, GemmKernels.Args.From(one, hasBias));
    }
}

/// <summary>
/// C[b] = α·op(A[b])·op(B[b]) + β·C[b] (+ bias[n]) with GemmShape's layout. Group (x, y) computes the 64×64 tile of C at
/// rows 64·y, columns 64·x of batch z. Per slab of 16 depth values, the 256 threads load op(A) (64×16) and op(B) (16×64)
/// into shared memory, four elements each, reading along whichever axis is contiguous in memory (so loads coalesce for
/// every transpose), then each thread accumulates a 4×4 block of C in registers: rows ty + 16i, columns tx + 16j, so a
/// warp's 32 threads read 32 consecutive columns of the B slab and store 32 consecutive floats of C.
/// </summary>
public static class GemmKernels
{
    const int Tile = Block4x4.Tile, Slab = Block4x4.Slab, Threads = 16;

    public readonly record struct Args(int M, int N, int K, int TransA, int TransB, float Alpha, float Beta, int HasBias,
        long StrideA, long StrideB, long StrideC)
    {
        public static Args From(in GemmShape s, bool hasBias) => new(s.M, s.N, s.K, s.TransA ? 1 : 0, s.TransB ? 1 : 0, s.Alpha,
            s.Beta, hasBias ? 1 : 0, s.BatchStrideA, s.BatchStrideB, s.BatchStrideC);
    }

    public static KernelConfig Config(GemmShape s) =>
        new(new Index3D((s.N + Tile - 1) / Tile, (s.M + Tile - 1) / Tile, s.Batch), new Index3D(Threads, Threads, 1));

    [GpuKernel("gemm_f32_tiled64", explicitlyGrouped: true)]
    public static void Tiled(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias, Args p) // c (batch, M, N); a, b per GemmShape; bias (N)
    {
        var aSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [k][row]
        var bSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [k][column]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        long aBase = Grid.IdxZ * p.StrideA, bBase = Grid.IdxZ * p.StrideB, cBase = Grid.IdxZ * p.StrideC;
        var block = new Block4x4();
        for (int k0 = 0; k0 < p.K; k0 += Slab)
        {
            for (int e = thread; e < Slab * Tile; e += Threads * Threads)
            {
                // op(A)[r, k]: A (M, K) is contiguous along k, A (K, M) when transposed along r.
                int r = p.TransA == 0 ? e / Slab : e % Tile, k = p.TransA == 0 ? e % Slab : e / Tile;
                int gr = row0 + r, gk = k0 + k;
                aSlab[k * Tile + r] = gr < p.M && gk < p.K
                    ? a[aBase + (p.TransA == 0 ? (long)gr * p.K + gk : (long)gk * p.M + gr)] : 0f;
                // op(B)[k, col]: B (K, N) is contiguous along col, B (N, K) when transposed along k.
                int col = p.TransB == 0 ? e % Tile : e / Slab, kb = p.TransB == 0 ? e / Tile : e % Slab;
                int gc = col0 + col, gkb = k0 + kb;
                bSlab[kb * Tile + col] = gc < p.N && gkb < p.K
                    ? b[bBase + (p.TransB == 0 ? (long)gkb * p.N + gc : (long)gc * p.K + gkb)] : 0f;
            }
            Group.Barrier();
            block.AddSlab(aSlab, bSlab, ty, tx);
            Group.Barrier();
        }
        Store(c, bias, p, cBase, row0 + ty, col0 + tx, block.C00, block.C01, block.C02, block.C03);
        Store(c, bias, p, cBase, row0 + ty + 16, col0 + tx, block.C10, block.C11, block.C12, block.C13);
        Store(c, bias, p, cBase, row0 + ty + 32, col0 + tx, block.C20, block.C21, block.C22, block.C23);
        Store(c, bias, p, cBase, row0 + ty + 48, col0 + tx, block.C30, block.C31, block.C32, block.C33);
    }

    /// <summary>The epilogue for one row of a thread's block: columns col, col+16, col+32, col+48.</summary>
    static void Store(ArrayView<float> c, ArrayView<float> bias, Args p, long cBase, int row, int col, float v0, float v1, float v2, float v3)
    {
        if (row >= p.M) return;
        Store(c, bias, p, cBase + (long)row * p.N, col, v0);
        Store(c, bias, p, cBase + (long)row * p.N, col + 16, v1);
        Store(c, bias, p, cBase + (long)row * p.N, col + 32, v2);
        Store(c, bias, p, cBase + (long)row * p.N, col + 48, v3);
    }

    internal static void Store(ArrayView<float> c, ArrayView<float> bias, Args p, long rowStart, int col, float v)
    {
        if (col >= p.N) return;
        float result = p.Alpha * v;
        if (p.Beta != 0) result += p.Beta * c[rowStart + col];
        if (p.HasBias != 0) result += bias[col];
        c[rowStart + col] = result;
    }
}
