// diffusers' ResnetBlock2D with the time embedding added between its two convolutions (time_embedding_norm "default").
using DreamBooth.Autograd;

namespace DreamBooth.Models.Unet;

/// <summary>
/// h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb)) per channel; h = conv2(silu(norm2(h)));
/// out = (shortcut(x) + h) / outputScaleFactor, the shortcut a 1×1 "conv_shortcut" when the channel count changes.
/// (Dropout is 0 as in SD training.)
/// </summary>
public sealed class ResnetBlock2D : Module
{
    readonly float _outputScaleFactor;

    public GroupNorm Norm1 { get; }
    public Conv2d Conv1 { get; }
    public Linear TimeEmbProj { get; }
    public GroupNorm Norm2 { get; }
    public Conv2d Conv2 { get; }
    public Conv2d? ConvShortcut { get; }

    public ResnetBlock2D(int inChannels, int outChannels, int tembChannels, int groups, float eps, float outputScaleFactor = 1f)
    {
        _outputScaleFactor = outputScaleFactor;
        Norm1 = AddModule("norm1", new GroupNorm(groups, inChannels, eps));
        Conv1 = AddModule("conv1", new Conv2d(inChannels, outChannels, 3, padding: 1));
        TimeEmbProj = AddModule("time_emb_proj", new Linear(tembChannels, outChannels));
        Norm2 = AddModule("norm2", new GroupNorm(groups, outChannels, eps));
        Conv2 = AddModule("conv2", new Conv2d(outChannels, outChannels, 3, padding: 1));
        if (inChannels != outChannels) ConvShortcut = AddModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1));
    }

    public Tensor Forward(Tensor x,   // (N, C_in, H, W)
        Tensor temb)                  // (N, T)
    {                                 // → (N, C_out, H, W)
        var h = Conv1.Forward(F.Silu(Norm1.Forward(x)));
        var t = TimeEmbProj.Forward(F.Silu(temb));
        h = F.Add(h, F.Reshape(t, t.Dim(0), t.Dim(1), 1, 1));
        h = Conv2.Forward(F.Silu(Norm2.Forward(h)));
        var y = F.Add(ConvShortcut?.Forward(x) ?? x, h);
        return _outputScaleFactor == 1f ? y : F.Scale(y, 1f / _outputScaleFactor);
    }
}
