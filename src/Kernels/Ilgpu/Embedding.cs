// CUDA-tier embedding: row gather by token id, and a deterministic scatter-add backward (one thread per table column).
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>? _embedding, _embeddingBackward;

    /// <summary>The ids are checked on the host first (a small download), like the host tiers do.</summary>
    int[] HostIds(string op, DeviceBuffer ids, int vocab)
    {
        var host = new int[ids.Length];
        Download<int>(host, ids);
        EmbeddingChecks.CheckIds(op, host, vocab);
        return host;
    }

    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        const string name = "embedding";
        int vocab = EmbeddingChecks.Validate(name, "y", y, "table", table, ids, count, dim);
        HostIds(name, ids, vocab);
        _embedding ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(EmbeddingKernels.Forward);
        _embedding(count * dim, F(name, y), F(name, table), Buf(name, ids).I32, EmbeddingKernels.Args.From(count, dim, vocab));
    }

    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim)
    {
        const string name = "embedding backward";
        int vocab = EmbeddingChecks.Validate(name, "dy", dy, "dtable", dtable, ids, count, dim);
        HostIds(name, ids, vocab);
        _embeddingBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(EmbeddingKernels.Backward);
        _embeddingBackward(dim, F(name, dtable), F(name, dy), Buf(name, ids).I32, EmbeddingKernels.Args.From(count, dim, vocab));
    }
}

/// <summary>
/// Forward: thread i owns y[i] of (count, dim) and reads table[ids[i / dim], i % dim] (a warp reads 32 consecutive
/// floats of one row). Backward: thread k owns column k and walks the ids in order, adding dy[t, k] into
/// dtable[ids[t], k]; a repeated id is summed in token order by one thread, so there are no float atomics and the result
/// is the same every run, with coalesced accesses across k (count·dim work, dim-way parallel: count is small, 77 per
/// prompt). Ids are checked on the host (EmbeddingChecks.CheckIds); in the kernel an id outside [0, vocab) is
/// skipped (forward writes 0) so it can never touch memory outside the table. Element counts below 2^31 per launch.
/// </summary>
public static class EmbeddingKernels
{
    public readonly record struct Args(int Count, int Dim, int Vocab)
    {
        public static Args From(int count, int dim, int vocab) => (long)vocab * dim < int.MaxValue && (long)count * dim < int.MaxValue
            ? new(count, dim, vocab) : throw new ArgumentException("embedding: vocab·dim and count·dim must stay below 2^31");
    }

    [GpuKernel("embedding_f32")]
    public static void Forward(Index1D i, ArrayView<float> y, ArrayView<float> table, ArrayView<int> ids, Args p) // y (count, dim) table (vocab, dim) ids (count)
    {
        int t = i / p.Dim, k = i - t * p.Dim, id = ids[t];
        y[i] = (uint)id < (uint)p.Vocab ? table[id * p.Dim + k] : 0f;
    }

    /// <summary>Launch with Dim threads: dtable[ids[t], k] += dy[t, k] for t = 0 .. Count−1 in order.</summary>
    [GpuKernel("embedding_backward_f32")]
    public static void Backward(Index1D k, ArrayView<float> dtable, ArrayView<float> dy, ArrayView<int> ids, Args p) // dtable (vocab, dim) dy (count, dim) ids (count)
    {
        for (int t = 0; t < p.Count; t++)
        {
            int id = ids[t];
            if ((uint)id < (uint)p.Vocab) dtable[id * p.Dim + k] += dy[t * p.Dim + k];
        }
    }
}
