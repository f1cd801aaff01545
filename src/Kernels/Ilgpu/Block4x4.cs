// The 4×4 register block of C that one thread of a 16×16 group owns in the 64×64-tile GEMM kernels (GEMM and conv2d).
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>Rows ty + 16i and columns tx + 16j (i, j in 0..3) of the group's 64×64 tile, accumulated over 16-deep slabs
/// held in shared memory as [k][row] (A) and [k][column] (B): a warp reads 32 consecutive B columns per step, and all
/// threads of a row of the group read the same A value (a broadcast).</summary>
public struct Block4x4
{
    public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

    public const int Tile = 64, Slab = 16;

    /// <summary>C += op(A)[rows, slab] · op(B)[slab, columns] for one slab.</summary>
    public void AddSlab(ArrayView<float> aSlab, ArrayView<float> bSlab, int ty, int tx) // aSlab (Slab, Tile) bSlab (Slab, Tile), shared
    {
        for (int k = 0; k < Slab; k++)
        {
            float a0 = aSlab[k * Tile + ty], a1 = aSlab[k * Tile + ty + 16], a2 = aSlab[k * Tile + ty + 32], a3 = aSlab[k * Tile + ty + 48];
            float b0 = bSlab[k * Tile + tx], b1 = bSlab[k * Tile + tx + 16], b2 = bSlab[k * Tile + tx + 32], b3 = bSlab[k * Tile + tx + 48];
            C00 += a0 * b0; C01 += a0 * b1; C02 += a0 * b2; C03 += a0 * b3;
            C10 += a1 * b0; C11 += a1 * b1; C12 += a1 * b2; C13 += a1 * b3;
            C20 += a2 * b0; C21 += a2 * b1; C22 += a2 * b2; C23 += a2 * b3;
            C30 += a3 * b0; C31 += a3 * b1; C32 += a3 * b2; C33 += a3 * b3;
        }
    }
}
