// diffusers' ResnetBlock2D without a time embedding, as the autoencoder uses it.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Vae;

/// <summary>out = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))); the shortcut is a 1×1 "conv_shortcut"
/// when the channel count changes, else the identity. (temb_channels None, dropout 0, output_scale_factor 1.)</summary>
public sealed class ResnetBlock2D : Module
{
    public GroupNorm Norm1 { get; }
    public Conv2d Conv1 { get; }
    public GroupNorm Norm2 { get; }
    public Conv2d Conv2 { get; }
    public Conv2d? ConvShortcut { get; }

    public ResnetBlock2D(int inChannels, int outChannels, int groups, float eps)
    {
        Norm1 = AddModule("norm1", new GroupNorm(groups, inChannels, eps));
        Conv1 = AddModule("conv1", new Conv2d(inChannels, outChannels, 3, padding: 1));
        Norm2 = AddModule("norm2", new GroupNorm(groups, outChannels, eps));
        Conv2 = AddModule("conv2", new Conv2d(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels) ConvShortcut = AddModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1));
    }

    public Tensor Forward(Tensor x)   // (N, C_in, H, W) → (N, C_out, H, W)
    {
        var h = Conv1.Forward(F.Silu(Norm1.Forward(x)));
        h = Conv2.Forward(F.Silu(Norm2.Forward(h)));
        return F.Add(ConvShortcut?.Forward(x) ?? x, h);
    }
}
