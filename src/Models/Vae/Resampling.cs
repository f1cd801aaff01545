// The autoencoder's resolution changes: Downsample2D (pad right/bottom, 3×3 conv stride 2) and Upsample2D (nearest 2×, 3×3 conv).
using DreamBooth.Autograd;

namespace DreamBooth.Models.Vae;

/// <summary>diffusers' Downsample2D with use_conv and padding 0: zero-pad one column right and one row below, then a
/// 3×3 stride-2 "conv" without padding, so H×W → ⌈H/2⌉×⌈W/2⌉ (H/2×W/2 for even sizes).</summary>
public sealed class Downsample2D : Module
{
    public Conv2d Conv { get; }

    public Downsample2D(int channels) => Conv = AddModule("conv", new Conv2d(channels, channels, 3, stride: 2));

    public Tensor Forward(Tensor x) => Conv.Forward(F.Pad2d(x, 0, 1, 0, 1));   // (N, C, H, W) → (N, C, H/2, W/2)
}

/// <summary>diffusers' Upsample2D with use_conv: nearest-neighbour 2× then a 3×3 "conv" with padding 1.</summary>
public sealed class Upsample2D : Module
{
    public Conv2d Conv { get; }

    public Upsample2D(int channels) => Conv = AddModule("conv", new Conv2d(channels, channels, 3, padding: 1));

    public Tensor Forward(Tensor x) => Conv.Forward(F.UpsampleNearest2x(x));   // (N, C, H, W) → (N, C, 2H, 2W)
}
