// diffusers' VAE Encoder: conv_in, down blocks, mid block, group norm + SiLU, conv_out to the posterior's moments.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Vae;

/// <summary>Image (N, in, H, W) → moments (N, 2·latent, H/f, W/f), f = 2^(blocks−1): mean then log-variance
/// (double_z). Every norm has eps 1e-6, as diffusers builds it.</summary>
public sealed class Encoder : Module
{
    internal const float Eps = 1e-6f;

    public Conv2d ConvIn { get; }
    public ModuleList<DownEncoderBlock2D> DownBlocks { get; }
    public UNetMidBlock2D MidBlock { get; }
    public GroupNorm ConvNormOut { get; }
    public Conv2d ConvOut { get; }

    public Encoder(int inChannels, int[] blockOutChannels, int layersPerBlock, int groups, int latentChannels)
    {
        ConvIn = AddModule("conv_in", new Conv2d(inChannels, blockOutChannels[0], 3, padding: 1));
        DownBlocks = AddModule("down_blocks", new ModuleList<DownEncoderBlock2D>());
        int channels = blockOutChannels[0];
        for (int i = 0; i < blockOutChannels.Length; i++)
        {
            bool last = i == blockOutChannels.Length - 1;
            DownBlocks.Add(new DownEncoderBlock2D(channels, blockOutChannels[i], layersPerBlock, groups, Eps, addDownsample: !last));
            channels = blockOutChannels[i];
        }
        MidBlock = AddModule("mid_block", new UNetMidBlock2D(channels, groups, Eps));
        ConvNormOut = AddModule("conv_norm_out", new GroupNorm(groups, channels, Eps));
        ConvOut = AddModule("conv_out", new Conv2d(channels, 2 * latentChannels, 3, padding: 1));
    }

    public Tensor Forward(Tensor x) => RunLayer(a => Run(a[0]), x);   // (N, in, H, W) → (N, 2·latent, H/f, W/f)

    Tensor Run(Tensor x)
    {
        var h = ConvIn.Forward(x);
        foreach (var block in DownBlocks) h = block.Forward(h);
        h = MidBlock.Forward(h);
        return ConvOut.Forward(ConvNormOut.Forward(h, silu: true));
    }
}
