// diffusers' ResnetBlock2D, with the time embedding added between its two convolutions (UNet) or without one (VAE).
using DreamBooth.Autograd;

namespace DreamBooth.Models.Layers;

/// <summary>
/// h = conv1(silu(norm1(x))), plus time_emb_proj(silu(temb)) per channel when the block has a time embedding
/// (time_embedding_norm "default"); h = conv2(silu(norm2(h))); out = (shortcut(x) + h) / outputScaleFactor, the
/// shortcut a 1×1 "conv_shortcut" when the channel count changes, else the identity. (Dropout is 0 as in SD training.)
/// </summary>
public sealed class ResnetBlock2D : Module
{
    readonly float _outputScaleFactor;

    public GroupNorm Norm1 { get; }
    public Conv2d Conv1 { get; }
    public Linear? TimeEmbProj { get; }
    public GroupNorm Norm2 { get; }
    public Conv2d Conv2 { get; }
    public Conv2d? ConvShortcut { get; }

    /// <param name="tembChannels">the time embedding's width, or null for a block without one (temb_channels None)</param>
    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, float eps, float outputScaleFactor = 1f)
    {
        _outputScaleFactor = outputScaleFactor;
        Norm1 = AddModule("norm1", new GroupNorm(groups, inChannels, eps));
        Conv1 = AddModule("conv1", new Conv2d(inChannels, outChannels, 3, padding: 1));
        if (tembChannels is { } t) TimeEmbProj = AddModule("time_emb_proj", new Linear(t, outChannels));
        Norm2 = AddModule("norm2", new GroupNorm(groups, outChannels, eps));
        Conv2 = AddModule("conv2", new Conv2d(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels) ConvShortcut = AddModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1));
    }

    public Tensor Forward(Tensor x,   // (N, C_in, H, W)
        Tensor? temb = null)          // (N, T), given exactly when the block has time_emb_proj
    {                                 // → (N, C_out, H, W)
        if ((temb == null) != (TimeEmbProj == null))
            throw new ArgumentException(TimeEmbProj == null
                ? "resnet block: a time embedding was given to a block without time_emb_proj"
                : "resnet block: the block has time_emb_proj but no time embedding was given");
        var h = Conv1.Forward(Norm1.Forward(x, silu: true));
        if (TimeEmbProj != null)
        {
            var t = TimeEmbProj.Forward(F.Silu(temb!));
            h = F.Add(h, F.Reshape(t, t.Dim(0), t.Dim(1), 1, 1));
        }
        h = Conv2.Forward(Norm2.Forward(h, silu: true));
        var y = F.Add(ConvShortcut?.Forward(x) ?? x, h);
        return _outputScaleFactor == 1f ? y : F.Scale(y, 1f / _outputScaleFactor);
    }
}
