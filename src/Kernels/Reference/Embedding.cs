// Embedding lookup (a row gather by token id) and its backward, a scatter-add of gradient rows into the table.
namespace DreamBooth.Kernels.Reference;

public static class EmbeddingReference
{
    /// <summary>y[i, :] = table[ids[i], :].</summary>
    public static void Forward(Span<double> y,  // (count, dim)
        ReadOnlySpan<double> table,              // (vocab, dim)
        ReadOnlySpan<int> ids,                   // (count)
        int count, int dim)
    {
        for (int i = 0; i < count; i++)
            table.Slice(ids[i] * dim, dim).CopyTo(y.Slice(i * dim, dim));
    }

    /// <summary>dtable[ids[i], :] += dy[i, :]; a token that appears several times collects every one of its rows.</summary>
    public static void Backward(Span<double> dtable,  // (vocab, dim), accumulated
        ReadOnlySpan<double> dy,                        // (count, dim)
        ReadOnlySpan<int> ids,                          // (count)
        int count, int dim)
    {
        for (int i = 0; i < count; i++)
            for (int k = 0; k < dim; k++)
                dtable[ids[i] * dim + k] += dy[i * dim + k];
    }
}

public sealed partial class ReferenceBackend
{
    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        int vocab = EmbeddingChecks.Validate("embedding", "y", y, "table", table, ids, count, dim);
        EmbeddingChecks.CheckIds("embedding", Host(ids).AsSpan<int>(), vocab);
        var result = new double[y.Length];
        EmbeddingReference.Forward(result, D(table), Host(ids).AsSpan<int>(), count, dim);
        Store(y, result);
    }

    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim)
    {
        int vocab = EmbeddingChecks.Validate("embedding backward", "dy", dy, "dtable", dtable, ids, count, dim);
        EmbeddingChecks.CheckIds("embedding backward", Host(ids).AsSpan<int>(), vocab);
        double[] result = D(dtable);
        EmbeddingReference.Backward(result, D(dy), Host(ids).AsSpan<int>(), count, dim);
        Store(dtable, result);
    }
}
