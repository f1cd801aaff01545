// The autoencoder's leaf layers: nn.Conv2d, nn.GroupNorm and nn.Linear as modules with PyTorch's default init.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Vae;

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

    public Tensor Forward(Tensor x) => F.GroupNorm(x, _groups, Weight.Value, Bias.Value, _eps);   // (N, C, ...)
}

/// <summary>nn.Linear with a bias: "weight" (Out, In), "bias" (Out), both U(±1/√In).</summary>
public sealed class Linear : Module
{
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public Linear(int inFeatures, int outFeatures)
    {
        Weight = AddParameter("weight", Init.FanIn(inFeatures), outFeatures, inFeatures);
        Bias = AddParameter("bias", Init.FanIn(inFeatures), outFeatures);
    }

    public Tensor Forward(Tensor x) => F.Linear(x, Weight.Value, Bias.Value);   // (..., In) → (..., Out)
}
