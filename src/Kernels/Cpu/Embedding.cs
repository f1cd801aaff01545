// Embedding as parallel row copies; its backward a scatter-add split over columns, so it is race-free and deterministic.
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        int vocab = EmbeddingChecks.Validate("embedding", "y", y, "table", table, ids, count, dim);
        EmbeddingChecks.CheckIds("embedding", Host(ids).AsSpan<int>(), vocab);
        float* py = F(y), pt = F(table);
        int* pid = (int*)Host(ids).Pointer;
        long rowBytes = dim * sizeof(float);
        Chunks.For(count, Math.Max(1, MoveGrainBytes / rowBytes), (i0, i1) =>
        {
            for (long i = i0; i < i1; i++) Buffer.MemoryCopy(pt + (long)pid[i] * dim, py + i * dim, rowBytes, rowBytes);
        });
    }

    /// <summary>Each worker owns a range of columns and adds every dy row into it in id order, so duplicate ids never
    /// race and each element sums in the same order as the reference (f32 instead of double accumulation).</summary>
    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim)
    {
        int vocab = EmbeddingChecks.Validate("embedding backward", "dy", dy, "dtable", dtable, ids, count, dim);
        EmbeddingChecks.CheckIds("embedding backward", Host(ids).AsSpan<int>(), vocab);
        float* pt = F(dtable), pdy = F(dy);
        int* pid = (int*)Host(ids).Pointer;
        long columnsPerChunk = Math.Max(64, (1L << 16) / count);   // about 64K additions per chunk
        Chunks.For(dim, columnsPerChunk, (c0, c1) =>
        {
            for (long i = 0; i < count; i++)
            {
                float* t = pt + (long)pid[i] * dim, g = pdy + i * dim;
                long k = c0;
                for (; k + 16 <= c1; k += 16) (Vector512.Load(t + k) + Vector512.Load(g + k)).Store(t + k);
                for (; k < c1; k++) t[k] += g[k];
            }
        });
    }
}
