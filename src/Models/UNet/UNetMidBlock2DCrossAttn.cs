// diffusers' UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) pairs, at the lowest resolution.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>The resnets divide their output by mid_block_scale_factor. diffusers gives the mid block's transformers
/// no only_cross_attention, so attn1 is always self-attention here.</summary>
public sealed class UNetMidBlock2DCrossAttn : Module
{
    public ModuleList<Transformer2DModel> Attentions { get; }
    public ModuleList<ResnetBlock2D> Resnets { get; }

    public UNetMidBlock2DCrossAttn(int channels, int heads, float outputScaleFactor, UNetBlockSettings s, int layers = 1)
    {
        Attentions = AddModule("attentions", new ModuleList<Transformer2DModel>());
        Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
        Resnets.Add(new ResnetBlock2D(channels, channels, s.TembChannels, s.Groups, s.Eps, outputScaleFactor));
        for (int i = 0; i < layers; i++)
        {
            Attentions.Add(new Transformer2DModel(channels, heads, s.ContextDim, s.Groups, s.UseLinearProjection,
                onlyCrossAttention: false, s.TransformerLayers));
            Resnets.Add(new ResnetBlock2D(channels, channels, s.TembChannels, s.Groups, s.Eps, outputScaleFactor));
        }
    }

    public Tensor Forward(Tensor x,   // (N, C, H, W)
        Tensor temb,                  // (N, T)
        Tensor context)               // (N, Lk, contextDim)
    {                                 // → (N, C, H, W)
        x = RunBlock(a => Resnets[0].Forward(a[0], a[1]), x, temb);
        for (int i = 0; i < Attentions.Count; i++)
        {
            var attention = Attentions[i];
            var resnet = Resnets[i + 1];
            x = RunBlock(a => attention.Forward(a[0], a[1]), x, context);
            x = RunBlock(a => resnet.Forward(a[0], a[1]), x, temb);
        }
        return x;
    }
}
