// diffusers' CrossAttnUpBlock2D: (resnet over input ⧺ skip, transformer) pairs, then an optional upsampler.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

public sealed class CrossAttnUpBlock2D : UNetUpBlock
{
    public ModuleList<Transformer2DModel> Attentions { get; }
    public ModuleList<ResnetBlock2D> Resnets { get; }

    /// <param name="inChannels">the channels of the last skip this block takes (the matching down block's input)</param>
    /// <param name="prevOutputChannels">the channels coming from the block below</param>
    /// <param name="heads">attention heads of this block's transformers</param>
    public CrossAttnUpBlock2D(int inChannels, int outChannels, int prevOutputChannels, int layers, int heads,
        bool onlyCrossAttention, bool addUpsample, UNetBlockSettings s)
    {
        Attentions = AddModule("attentions", new ModuleList<Transformer2DModel>());
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++)
        {
            Resnets.Add(new ResnetBlock2D(ResnetInChannels(i, layers, inChannels, outChannels, prevOutputChannels), outChannels,
                s.TembChannels, s.Groups, s.Eps));
            Attentions.Add(new Transformer2DModel(outChannels, heads, s.ContextDim, s.Groups, s.UseLinearProjection,
                onlyCrossAttention, s.TransformerLayers));
        }
        if (addUpsample) AddUpsampler(outChannels);
    }

    public override Tensor Forward(Tensor x, Tensor temb, Tensor context, List<Tensor> skips)
    {
        for (int i = 0; i < Resnets.Count; i++)
        {
            var resnet = Resnets[i];
            x = RunBlock(a => resnet.Forward(F.Concat(a[0], a[1], 1), a[2]), x, Pop(skips), temb);
            var attention = Attentions[i];
            x = RunBlock(a => attention.Forward(a[0], a[1]), x, context);
        }
        return Upsample(x);
    }
}
