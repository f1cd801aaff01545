// The text encoder's leaf layers: nn.Linear, nn.LayerNorm and nn.Embedding as modules with their checkpoint names.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Clip;

/// <summary>nn.Linear: "weight" (Out, In) and "bias" (Out), initialised as CLIP's _init_weights does (normal weight,
/// zero bias).</summary>
public sealed class Linear : Module
{
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public Linear(int inFeatures, int outFeatures, double weightStd)
    {
        Weight = AddParameter("weight", new Init.Normal(weightStd), outFeatures, inFeatures);
        Bias = AddParameter("bias", Init.Zeros, outFeatures);
    }

    public Tensor Forward(Tensor x) => F.Linear(x, Weight.Value, Bias.Value);   // (..., In) → (..., Out)
}

/// <summary>nn.LayerNorm over the last axis: "weight" = 1, "bias" = 0.</summary>
public sealed class LayerNorm : Module
{
    readonly float _eps;

    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public LayerNorm(int dim, float eps)
    {
        _eps = eps;
        Weight = AddParameter("weight", Init.Ones, dim);
        Bias = AddParameter("bias", Init.Zeros, dim);
    }

    public Tensor Forward(Tensor x) => F.LayerNorm(x, Weight.Value, Bias.Value, _eps);   // (..., D)
}

/// <summary>nn.Embedding: a "weight" table (V, D) of rows looked up by index.</summary>
public sealed class Embedding : Module
{
    public Parameter Weight { get; }

    public Embedding(int count, int dim, double std) => Weight = AddParameter("weight", new Init.Normal(std), count, dim);

    public Tensor Forward(Tensor ids) => F.Embedding(ids, Weight.Value);   // i32 (...) → (..., D)
}
