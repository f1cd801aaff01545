// diffusers' DownBlock2D: resnets only, then an optional downsampler.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

public sealed class DownBlock2D : UNetDownBlock
{
    public ModuleList<ResnetBlock2D> Resnets { get; }

    public DownBlock2D(int inChannels, int outChannels, int layers, bool addDownsample, int downsamplePadding, UNetBlockSettings s)
    {
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++)
            Resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, s.TembChannels, s.Groups, s.Eps));
        if (addDownsample) AddDownsampler(outChannels, downsamplePadding);
    }

    public override Tensor Forward(Tensor x, Tensor temb, Tensor context, List<Tensor> skips)
    {
        foreach (var resnet in Resnets)
        {
            x = RunBlock(a => resnet.Forward(a[0], a[1]), x, temb);
            skips.Add(x);
        }
        return Downsample(x, skips);
    }
}
