// diffusers' Downsample2D with use_conv: a 3×3 stride-2 convolution "conv" (zero-padded by (0,1,0,1) when padding is 0).
using DreamBooth.Autograd;

namespace DreamBooth.Models.Unet;

public sealed class Downsample2D : Module
{
    readonly int _padding;

    public Conv2d Conv { get; }

    public Downsample2D(int channels, int padding)
    {
        if (padding is not (0 or 1)) throw new ArgumentException($"unet downsample: padding {padding} is not 0 or 1");
        _padding = padding;
        Conv = AddModule("conv", new Conv2d(channels, channels, 3, stride: 2, padding: padding));
    }

    public Tensor Forward(Tensor x) =>   // (N, C, H, W) → (N, C, H/2, W/2)
        Conv.Forward(_padding == 0 ? F.Pad2d(x, 0, 1, 0, 1) : x);
}
