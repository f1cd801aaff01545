// diffusers' TextTimeEmbedding (addition_embed_type "text"): the encoder states attention-pooled into one vector added to the time embedding.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>
/// Imagen's pooled text conditioning: norm1 → pool → proj → norm2 turns the text encoder's states (N, L, D) into a
/// (N, time_embed_dim) vector that the UNet adds to its time embedding, so every resnet sees the whole prompt, not only
/// the transformers that cross-attend to it.
/// </summary>
public sealed class TextTimeEmbedding : Module
{
    public LayerNorm Norm1 { get; }
    public AttentionPooling Pool { get; }
    public Linear Proj { get; }
    public LayerNorm Norm2 { get; }

    public TextTimeEmbedding(int encoderDim, int timeEmbedDim, int heads)
    {
        Norm1 = AddModule("norm1", new LayerNorm(encoderDim, 1e-5f));
        Pool = AddModule("pool", new AttentionPooling(heads, encoderDim));
        Proj = AddModule("proj", new Linear(encoderDim, timeEmbedDim));
        Norm2 = AddModule("norm2", new LayerNorm(timeEmbedDim, 1e-5f));
    }

    public Tensor Forward(Tensor hiddenStates) =>   // (N, L, D) → (N, time_embed_dim)
        Norm2.Forward(Proj.Forward(Pool.Forward(Norm1.Forward(hiddenStates))));
}

/// <summary>
/// diffusers' AttentionPooling (from CLIP's attention pool): a class token, the mean of the sequence plus a learned
/// positional_embedding, attends with its own query over [class token; sequence] through k_proj, q_proj and v_proj;
/// heads split the width, scores are scaled by 1/√(D/heads), and the class token's output is the pooled vector.
/// </summary>
public sealed class AttentionPooling : Module
{
    readonly int _heads;

    public Parameter PositionalEmbedding { get; }
    public Linear KProj { get; }
    public Linear QProj { get; }
    public Linear VProj { get; }

    public AttentionPooling(int heads, int dim)
    {
        if (heads <= 0 || dim % heads != 0)
            throw new ArgumentException($"attention pooling: width {dim} does not split into {heads} heads");
        _heads = heads;
        PositionalEmbedding = AddParameter("positional_embedding", new Init.Normal(1 / Math.Sqrt(dim)), 1, dim);
        KProj = AddModule("k_proj", new Linear(dim, dim));
        QProj = AddModule("q_proj", new Linear(dim, dim));
        VProj = AddModule("v_proj", new Linear(dim, dim));
    }

    public Tensor Forward(Tensor x)   // (N, L, D) → (N, D)
    {
        int n = x.Dim(0), d = x.Dim(2);
        var classToken = F.Add(F.Mean(x, 1), F.Reshape(PositionalEmbedding.Value, 1, 1, d));   // (N, 1, D)
        var tokens = F.Concat(classToken, x, 1);                                                  // (N, L + 1, D)
        var pooled = F.Attention(QProj.Forward(classToken), KProj.Forward(tokens), VProj.Forward(tokens), _heads);
        return F.Reshape(pooled, n, d);
    }
}
