// diffusers' Upsample2D with use_conv: nearest-neighbour 2× upsampling, then a 3×3 convolution "conv".
using DreamBooth.Autograd;

namespace DreamBooth.Models.Unet;

public sealed class Upsample2D : Module
{
    public Conv2d Conv { get; }

    public Upsample2D(int channels) => Conv = AddModule("conv", new Conv2d(channels, channels, 3, padding: 1));

    public Tensor Forward(Tensor x) => Conv.Forward(F.UpsampleNearest2x(x));   // (N, C, H, W) → (N, C, 2H, 2W)
}
