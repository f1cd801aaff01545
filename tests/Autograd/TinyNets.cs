// Small modules for the optimizer, mixed-precision and checkpointing tests: linear, MLP, residual MLP block, conv net.
using DreamBooth.Autograd;

namespace DreamBooth.Tests.Autograd;

sealed class LinearLayer : Module
{
    readonly Parameter _weight, _bias;

    public LinearLayer(int inF, int outF)
    {
        _weight = AddParameter("weight", Init.FanIn(inF), outF, inF);
        _bias = AddParameter("bias", Init.FanIn(inF), outF);
    }

    public Tensor Forward(Tensor x) => F.Linear(x, _weight.Value, _bias.Value);   // (..., In) → (..., Out)
}

/// <summary>fc2(silu(fc1(x))).</summary>
sealed class Mlp : Module
{
    readonly LinearLayer _fc1, _fc2;

    public Mlp(int inF, int hidden, int outF)
    {
        _fc1 = AddModule("fc1", new LinearLayer(inF, hidden));
        _fc2 = AddModule("fc2", new LinearLayer(hidden, outF));
    }

    public Tensor Forward(Tensor x) => _fc2.Forward(F.Silu(_fc1.Forward(x)));   // (..., In) → (..., Out)
}

/// <summary>x + fc2(silu(fc1(x))) with a 4× wider hidden layer: the activations a transformer block's MLP keeps.</summary>
sealed class ResidualBlock : Module
{
    readonly Mlp _mlp;

    public ResidualBlock(int dim) => _mlp = AddModule("mlp", new Mlp(dim, 4 * dim, dim));

    public Tensor Forward(Tensor x) => F.Add(x, _mlp.Forward(x));   // (..., D) → (..., D)
}

sealed class ConvLayer : Module
{
    readonly Parameter _weight, _bias;

    public ConvLayer(int inC, int outC)
    {
        _weight = AddParameter("weight", Init.FanIn(inC * 9), outC, inC, 3, 3);
        _bias = AddParameter("bias", Init.FanIn(inC * 9), outC);
    }

    public Tensor Forward(Tensor x) => F.Conv2d(x, _weight.Value, _bias.Value, padding: 1);   // (N, In, H, W) → (N, Out, H, W)
}

/// <summary>conv2(silu(conv1(x))), 3×3 convolutions with padding 1.</summary>
sealed class ConvNet : Module
{
    readonly ConvLayer _conv1, _conv2;

    public ConvNet(int channels, int hidden)
    {
        _conv1 = AddModule("conv1", new ConvLayer(channels, hidden));
        _conv2 = AddModule("conv2", new ConvLayer(hidden, channels));
    }

    public Tensor Forward(Tensor x) => _conv2.Forward(F.Silu(_conv1.Forward(x)));   // (N, C, H, W) → (N, C, H, W)
}
