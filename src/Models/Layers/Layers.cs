// The models' leaf layers: nn.Linear, nn.Conv2d, nn.GroupNorm, nn.LayerNorm and nn.Embedding with their checkpoint names.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Layers;

/// <summary>nn.Linear: "weight" (Out, In) and, unless bias is false, "bias" (Out). Both default to PyTorch's
/// U(±1/√In); CLIP passes its _init_weights instead (normal weight, zero bias). A LoRA adapter, when one is attached,
/// adds its low-rank term to the output (peft's LoraLayer); it is not a child, so the layer's keys stay diffusers'.</summary>
public sealed class Linear : Module
{
    public Parameter Weight { get; }
    public Parameter? Bias { get; }
    public int InFeatures => Weight.Shape[1];
    public int OutFeatures => Weight.Shape[0];
    public LoraAdapter? Adapter { get; set; }

    public Linear(int inFeatures, int outFeatures, bool bias = true, Init? weightInit = null, Init? biasInit = null)
    {
        Weight = AddParameter("weight", weightInit ?? Init.FanIn(inFeatures), outFeatures, inFeatures);
        if (bias) Bias = AddParameter("bias", biasInit ?? Init.FanIn(inFeatures), outFeatures);
    }

    public Tensor Forward(Tensor x)   // (..., In) → (..., Out)
    {
        var y = F.Linear(x, Weight.Value, Bias?.Value);
        return Adapter is { } lora ? F.Add(y, lora.Forward(x)) : y;
    }
}

/// <summary>nn.Conv2d with a bias: "weight" (O, C, K, K), "bias" (O), both U(±1/√(C·K·K)).</summary>
public sealed class Conv2d : Module
{
    readonly int _stride, _padding;

    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public Conv2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0)
    {
        _stride = stride;
        _padding = padding;
        var init = Init.FanIn((long)inChannels * kernel * kernel);
        Weight = AddParameter("weight", init, outChannels, inChannels, kernel, kernel);
        Bias = AddParameter("bias", init, outChannels);
    }

    public Tensor Forward(Tensor x) => F.Conv2d(x, Weight.Value, Bias.Value, _stride, _padding);   // (N, C, H, W) → (N, O, OH, OW)
}

/// <summary>nn.GroupNorm with affine "weight" = 1 and "bias" = 0.</summary>
public sealed class GroupNorm : Module
{
    readonly int _groups;
    readonly float _eps;

    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public GroupNorm(int groups, int channels, float eps)
    {
        if (groups <= 0 || channels % groups != 0)
            throw new ArgumentException($"group norm: {channels} channels do not split into {groups} groups");
        _groups = groups;
        _eps = eps;
        Weight = AddParameter("weight", Init.Ones, channels);
        Bias = AddParameter("bias", Init.Zeros, channels);
    }

    /// <summary>GroupNorm(x), or SiLU(GroupNorm(x)) fused into the one op when <paramref name="silu"/>.</summary>
    public Tensor Forward(Tensor x, bool silu = false) => F.GroupNorm(x, _groups, Weight.Value, Bias.Value, _eps, silu);   // (N, C, ...)
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

/// <summary>nn.Embedding: a "weight" table (V, D) of rows looked up by index, N(0, 1) unless an init is given
/// (CLIP's is N(0, 0.02²)).</summary>
public sealed class Embedding : Module
{
    public Parameter Weight { get; }
    public int Count { get; }

    public Embedding(int count, int dim, Init? init = null)
    {
        Count = count;
        Weight = AddParameter("weight", init ?? new Init.Normal(1.0), count, dim);
    }

    public Tensor Forward(Tensor ids) => F.Embedding(ids, Weight.Value);   // i32 (...) → (..., D)
}
