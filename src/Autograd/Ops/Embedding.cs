// Table lookups (token and position embeddings) and diffusers' sinusoidal timestep embedding.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>nn.Embedding: y[..., :] = table[ids[...], :].</summary>
    public static Tensor Embedding(Tensor ids,   // i32 (...)
        Tensor table)                            // (V, D)
    {
        if (ids.DType != DType.I32 || table.Rank != 2)
            throw new ArgumentException($"embedding: ids {ids}, table {table} do not fit (ids i32 (...), table (V, D))");
        ids = Contiguous(ids);
        table = Contiguous(table);
        int count = checked((int)ids.Length), dim = table.Dim(1);
        var y = Tensor.Empty(table.Backend, [.. ids.Shape, dim]);
        table.Backend.Embedding(y.Storage, table.Storage, ids.Storage, count, dim);
        if (Tape.Needs(table))
            Tape.Record("embedding", y, dy =>
            {   // dtable[id, :] += Σ over the positions holding id of dy[position, :]
                table.Backend.EmbeddingBackward(Gradients.Into(table).Storage, dy.Storage, ids.Storage, count, dim);
            });
        return y;
    }

    /// <summary>
    /// diffusers' get_timestep_embedding, a constant (no gradient): with half = dim / 2 and i in [0, half),
    /// freq_i = exp(−ln(maxPeriod)·i / (half − downscaleFreqShift)), a = scale·t·freq_i, row = [sin a, cos a]
    /// ([cos a, sin a] when flipSinToCos), and a zero column appended when dim is odd. Computed in f32 in the same
    /// order as the PyTorch original, so the values agree with it to the rounding of sin and cos.
    /// </summary>
    public static Tensor TimestepEmbedding(IBackend backend, float[] timesteps,   // (N)
        int dim, bool flipSinToCos, float downscaleFreqShift, float scale = 1, int maxPeriod = 10000)
    {
        int half = dim / 2;
        if (timesteps.Length == 0 || half <= 0 || maxPeriod <= 0 || half - downscaleFreqShift == 0)
            throw new ArgumentException($"timestep embedding: {timesteps.Length} timesteps, dim {dim}, max period {maxPeriod}, " +
                                        $"shift {downscaleFreqShift} (needs timesteps, dim ≥ 2, a positive max period and shift ≠ dim/2)");
        var freq = new float[half];
        float logPeriod = (float)Math.Log(maxPeriod);
        for (int i = 0; i < half; i++) freq[i] = MathF.Exp(-logPeriod * i / (half - downscaleFreqShift));
        var values = new float[timesteps.Length * dim];
        for (int n = 0; n < timesteps.Length; n++)
        {
            var row = values.AsSpan(n * dim, dim);
            for (int i = 0; i < half; i++)
            {
                float a = scale * (timesteps[n] * freq[i]);
                row[flipSinToCos ? half + i : i] = MathF.Sin(a);
                row[flipSinToCos ? i : half + i] = MathF.Cos(a);
            }
        }
        return Tensor.FromArray(backend, values, timesteps.Length, dim);
    }
}
