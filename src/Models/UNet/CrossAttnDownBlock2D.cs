// diffusers' CrossAttnDownBlock2D: (resnet, transformer) pairs, then an optional downsampler.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

public sealed class CrossAttnDownBlock2D : UNetDownBlock
{
    public ModuleList<Transformer2DModel> Attentions { get; }
    public ModuleList<ResnetBlock2D> Resnets { get; }

    /// <param name="heads">attention heads of this block's transformers (the config's attention_head_dim, see UNet2DConditionConfig)</param>
    public CrossAttnDownBlock2D(int inChannels, int outChannels, int layers, int heads, bool onlyCrossAttention,
        bool addDownsample, int downsamplePadding, UNetBlockSettings s)
    {
        Attentions = AddModule("attentions", new ModuleList<Transformer2DModel>());
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        for (int i = 0; i < layers; i++)
        {
            Resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, s.TembChannels, s.Groups, s.Eps));
            Attentions.Add(new Transformer2DModel(outChannels, heads, s.ContextDim, s.Groups, s.UseLinearProjection,
                onlyCrossAttention, s.TransformerLayers));
        }
        if (addDownsample) AddDownsampler(outChannels, downsamplePadding);
    }

    public override Tensor Forward(Tensor x, Tensor temb, Tensor context, List<Tensor> skips)
    {
        for (int i = 0; i < Resnets.Count; i++)
        {
            var resnet = Resnets[i];
            x = RunBlock(a => resnet.Forward(a[0], a[1]), x, temb);
            var attention = Attentions[i];
            x = RunBlock(a => attention.Forward(a[0], a[1]), x, context);
            skips.Add(x);
        }
        return Downsample(x, skips);
    }
}
