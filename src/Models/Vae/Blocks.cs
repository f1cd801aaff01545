// The autoencoder's blocks: DownEncoderBlock2D, UpDecoderBlock2D and UNetMidBlock2D (resnets, attention, resampling).
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Vae;

/// <summary>diffusers' DownEncoderBlock2D: "resnets" (the first changes the channel count), then
/// "downsamplers.0" unless it is the last block.</summary>
public sealed class DownEncoderBlock2D : Module
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Downsample2D>? Downsamplers { get; }

    public DownEncoderBlock2D(int inChannels, int outChannels, int layers, int groups, float eps, bool addDownsample)
    {
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++) Resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps));
        if (addDownsample)
        {
            Downsamplers = AddModule("downsamplers", new ModuleList<Downsample2D>());
            Downsamplers.Add(new Downsample2D(outChannels, padding: 0));
        }
    }

    public Tensor Forward(Tensor x)   // (N, C_in, H, W) → (N, C_out, H', W')
    {
        foreach (var resnet in Resnets) x = RunBlock(a => resnet.Forward(a[0]), x);
        return Downsamplers is { } down ? RunLayer(a => down[0].Forward(a[0]), x) : x;
    }
}

/// <summary>diffusers' UpDecoderBlock2D: "resnets" (the first changes the channel count), then "upsamplers.0"
/// unless it is the last block.</summary>
public sealed class UpDecoderBlock2D : Module
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Upsample2D>? Upsamplers { get; }

    public UpDecoderBlock2D(int inChannels, int outChannels, int layers, int groups, float eps, bool addUpsample)
    {
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++) Resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps));
        if (addUpsample)
        {
            Upsamplers = AddModule("upsamplers", new ModuleList<Upsample2D>());
            Upsamplers.Add(new Upsample2D(outChannels));
        }
    }

    public Tensor Forward(Tensor x)   // (N, C_in, H, W) → (N, C_out, H', W')
    {
        foreach (var resnet in Resnets) x = RunBlock(a => resnet.Forward(a[0]), x);
        return Upsamplers is { } up ? RunLayer(a => up[0].Forward(a[0]), x) : x;
    }
}

/// <summary>diffusers' UNetMidBlock2D without a time embedding: resnets.0, attentions.0, resnets.1 (the checkpoint
/// lists "attentions" before "resnets").</summary>
public sealed class UNetMidBlock2D : Module
{
    public ModuleList<VaeAttention> Attentions { get; }
    public ModuleList<ResnetBlock2D> Resnets { get; }

    public UNetMidBlock2D(int channels, int groups, float eps)
    {
        Attentions = AddModule("attentions", new ModuleList<VaeAttention>());
        Attentions.Add(new VaeAttention(channels, groups, eps));
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        Resnets.Add(new ResnetBlock2D(channels, channels, tembChannels: null, groups, eps));
        Resnets.Add(new ResnetBlock2D(channels, channels, tembChannels: null, groups, eps));
    }

    public Tensor Forward(Tensor x)   // (N, C, H, W)
    {
        x = RunBlock(a => Resnets[0].Forward(a[0]), x);
        x = RunBlock(a => Attentions[0].Forward(a[0]), x);
        return RunBlock(a => Resnets[1].Forward(a[0]), x);
    }
}
