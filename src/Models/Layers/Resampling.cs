// diffusers' Downsample2D and Upsample2D with use_conv: a 3×3 stride-2 convolution, and nearest 2× then a 3×3 convolution.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Layers;

/// <summary>diffusers' Downsample2D with use_conv: a 3×3 stride-2 "conv". With padding 1 the convolution pads
/// itself; with padding 0 (the VAE, and UNets with downsample_padding 0) the input is first zero-padded by one
/// column right and one row below. H×W → ⌊H/2⌋×⌊W/2⌋ with padding 0, ⌈H/2⌉×⌈W/2⌉ with padding 1 (H/2×W/2 for even
/// sizes either way).</summary>
public sealed class Downsample2D : Module
{
    readonly int _padding;

    public Conv2d Conv { get; }

    public Downsample2D(int channels, int padding)
    {
        if (padding is not (0 or 1)) throw new ArgumentException($"downsample: padding {padding} is not 0 or 1");
        _padding = padding;
        Conv = AddModule("conv", new Conv2d(channels, channels, 3, stride: 2, padding: padding));
    }

    public Tensor Forward(Tensor x) =>   // (N, C, H, W) → (N, C, H/2, W/2)
        Conv.Forward(_padding == 0 ? F.Pad2d(x, 0, 1, 0, 1) : x);
}

/// <summary>diffusers' Upsample2D with use_conv: nearest-neighbour 2× then a 3×3 "conv" with padding 1.</summary>
public sealed class Upsample2D : Module
{
    public Conv2d Conv { get; }

    public Upsample2D(int channels) => Conv = AddModule("conv", new Conv2d(channels, channels, 3, padding: 1));

    public Tensor Forward(Tensor x) => Conv.Forward(F.UpsampleNearest2x(x));   // (N, C, H, W) → (N, C, 2H, 2W)
}
