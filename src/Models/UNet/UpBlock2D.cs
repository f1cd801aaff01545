// diffusers' UpBlock2D: resnets over (input ⧺ skip), then an optional upsampler.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

public sealed class UpBlock2D : UNetUpBlock
{
    public ModuleList<ResnetBlock2D> Resnets { get; }

    /// <param name="inChannels">the channels of the last skip this block takes (the matching down block's input)</param>
    /// <param name="prevOutputChannels">the channels coming from the block below</param>
    public UpBlock2D(int inChannels, int outChannels, int prevOutputChannels, int layers, bool addUpsample, UNetBlockSettings s)
    {
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++)
            Resnets.Add(new ResnetBlock2D(ResnetInChannels(i, layers, inChannels, outChannels, prevOutputChannels), outChannels,
                s.TembChannels, s.Groups, s.Eps));
        if (addUpsample) AddUpsampler(outChannels);
    }

    public override Tensor Forward(Tensor x, Tensor temb, Tensor context, List<Tensor> skips)
    {
        foreach (var resnet in Resnets)
            x = RunBlock(a => resnet.Forward(F.Concat(a[0], a[1], 1), a[2]), x, Pop(skips), temb);
        return Upsample(x);
    }
}
