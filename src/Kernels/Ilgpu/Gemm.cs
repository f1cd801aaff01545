// CUDA-tier GEMM: 64×64 tiles of C per group of 16×16 threads, K in slabs of 16 through shared memory, 4×4 per thread.
using ILGPU;
using ILGPU.Runtime;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// C[b] = α·op(A[b])·op(B[b]) + β·C[b] (+ bias[n]) with GemmShape's layout. Group (x, y) computes the 64×64 tile of C at
/// rows 64·y, columns 64·x of batch z. Per slab of 16 depth values, the 256 threads load op(A) (64×16) and op(B) (16×64)
/// into shared memory, four elements each, reading along whichever axis is contiguous in memory (so loads coalesce for
/// every transpose), then each thread accumulates a 4×4 block of C in registers: rows ty + 16i, columns tx + 16j, so a
/// warp's 32 threads read 32 consecutive columns of the B slab and store 32 consecutive floats of C.
/// </summary>
public static class GemmKernels
{
    const int Tile = 64, Slab = 16, Threads = 16;

    public readonly record struct Args(int M, int N, int K, int TransA, int TransB, float Alpha, float Beta, int HasBias,
        long StrideA, long StrideB, long StrideC)
    {
        public static Args From(in GemmShape s, bool hasBias) => new(s.M, s.N, s.K, s.TransA ? 1 : 0, s.TransB ? 1 : 0, s.Alpha,
            s.Beta, hasBias ? 1 : 0, s.BatchStrideA, s.BatchStrideB, s.BatchStrideC);
    }

    public static KernelConfig Config(in GemmShape s) =>
        new(new Index3D((s.N + Tile - 1) / Tile, (s.M + Tile - 1) / Tile, s.Batch), new Index3D(Threads, Threads, 1));

    [GpuKernel("gemm_f32_tiled64", explicitlyGrouped: true)]
    public static void Tiled(ArrayView<float> c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> bias, Args p)
    {
        var aSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [k][row]
        var bSlab = SharedMemory.Allocate<float>(Slab * Tile);    // [k][column]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        long aBase = Grid.IdxZ * p.StrideA, bBase = Grid.IdxZ * p.StrideB, cBase = Grid.IdxZ * p.StrideC;
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
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
            for (int k = 0; k < Slab; k++)
            {
                float a0 = aSlab[k * Tile + ty], a1 = aSlab[k * Tile + ty + 16], a2 = aSlab[k * Tile + ty + 32], a3 = aSlab[k * Tile + ty + 48];
                float b0 = bSlab[k * Tile + tx], b1 = bSlab[k * Tile + tx + 16], b2 = bSlab[k * Tile + tx + 32], b3 = bSlab[k * Tile + tx + 48];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }
        Store(c, bias, p, cBase, row0 + ty, col0 + tx, c00, c01, c02, c03);
        Store(c, bias, p, cBase, row0 + ty + 16, col0 + tx, c10, c11, c12, c13);
        Store(c, bias, p, cBase, row0 + ty + 32, col0 + tx, c20, c21, c22, c23);
        Store(c, bias, p, cBase, row0 + ty + 48, col0 + tx, c30, c31, c32, c33);
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

    static void Store(ArrayView<float> c, ArrayView<float> bias, Args p, long rowStart, int col, float v)
    {
        if (col >= p.N) return;
        float result = p.Alpha * v;
        if (p.Beta != 0) result += p.Beta * c[rowStart + col];
        if (p.HasBias != 0) result += bias[col];
        c[rowStart + col] = result;
    }
}
