// Shared by the UNet blocks: their build settings, the down/up block contracts around the skip-connection stack, and their resamplers.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>Shared by every down, mid and up block: what their resnets and transformers are built with.</summary>
/// <param name="TembChannels">the time embedding's width (4·block_out_channels[0])</param>
/// <param name="Groups">norm_num_groups of every GroupNorm</param>
/// <param name="Eps">norm_eps of the resnets' GroupNorms</param>
/// <param name="ContextDim">cross_attention_dim: the width of encoder_hidden_states</param>
/// <param name="UseLinearProjection">proj_in/proj_out as Linear (SD 2.x) instead of 1×1 convolutions</param>
/// <param name="TransformerLayers">transformer_layers_per_block</param>
public sealed record UNetBlockSettings(int TembChannels, int Groups, float Eps, int ContextDim, bool UseLinearProjection,
    int TransformerLayers = 1);

/// <summary>A down block: pushes each resnet's (or resnet+attention's) output and the downsampler's output onto
/// the skip stack, as diffusers' output_states.</summary>
public abstract class UNetDownBlock : Module
{
    public ModuleList<Downsample2D>? Downsamplers { get; private set; }

    public abstract Tensor Forward(Tensor x,   // (N, C_in, H, W)
        Tensor temb,                           // (N, T)
        Tensor context,                        // (N, Lk, contextDim)
        List<Tensor> skips);                   // → (N, C_out, H', W'), H' = H/2 when it downsamples

    /// <summary>Declares "downsamplers.0"; called after the resnets and attentions, as the checkpoint orders them.</summary>
    protected void AddDownsampler(int channels, int padding)
    {
        Downsamplers = AddModule("downsamplers", new ModuleList<Downsample2D>());
        Downsamplers.Add(new Downsample2D(channels, padding));
    }

    /// <summary>The downsampler's output, pushed onto the skip stack; x itself when the block has none.</summary>
    protected Tensor Downsample(Tensor x, List<Tensor> skips)   // (N, C, H, W) → (N, C, H/2, W/2)
    {
        if (Downsamplers is not { } down) return x;
        x = RunLayer(a => down[0].Forward(a[0]), x);
        skips.Add(x);
        return x;
    }
}

/// <summary>An up block: each resnet concatenates the top of the skip stack to its input along the channels (popping it).</summary>
public abstract class UNetUpBlock : Module
{
    public ModuleList<Upsample2D>? Upsamplers { get; private set; }

    public abstract Tensor Forward(Tensor x,   // (N, C_prev, H, W)
        Tensor temb,                           // (N, T)
        Tensor context,                        // (N, Lk, contextDim)
        List<Tensor> skips);                   // → (N, C_out, H', W'), H' = 2H when it upsamples

    /// <summary>Declares "upsamplers.0"; called after the resnets and attentions, as the checkpoint orders them.</summary>
    protected void AddUpsampler(int channels)
    {
        Upsamplers = AddModule("upsamplers", new ModuleList<Upsample2D>());
        Upsamplers.Add(new Upsample2D(channels));
    }

    /// <summary>The upsampler's output; x itself when the block has none.</summary>
    protected Tensor Upsample(Tensor x) =>   // (N, C, H, W) → (N, C, 2H, 2W)
        Upsamplers is { } up ? RunLayer(a => up[0].Forward(a[0]), x) : x;

    /// <summary>Removes and returns the top of the stack.</summary>
    protected static Tensor Pop(List<Tensor> skips)
    {
        if (skips.Count == 0) throw new InvalidOperationException("unet up block: the skip-connection stack is empty");
        var top = skips[^1];
        skips.RemoveAt(skips.Count - 1);
        return top;
    }

    /// <summary>The channels resnet i of an up block takes in: its input plus the skip it concatenates (diffusers'
    /// resnet_in_channels + res_skip_channels).</summary>
    protected static int ResnetInChannels(int i, int layers, int inChannels, int outChannels, int prevOutputChannels) =>
        (i == 0 ? prevOutputChannels : outChannels) + (i == layers - 1 ? inChannels : outChannels);
}
