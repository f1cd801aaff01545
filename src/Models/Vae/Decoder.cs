// diffusers' VAE Decoder: conv_in, mid block, up blocks (widest first), group norm + SiLU, conv_out to the image.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Vae;

/// <summary>Latents (N, latent, h, w) → image (N, out, h·f, w·f). The up blocks walk block_out_channels in reverse,
/// each with layers_per_block + 1 resnets.</summary>
public sealed class Decoder : Module
{
    public Conv2d ConvIn { get; }
    public UNetMidBlock2D MidBlock { get; }
    public ModuleList<UpDecoderBlock2D> UpBlocks { get; }
    public GroupNorm ConvNormOut { get; }
    public Conv2d ConvOut { get; }

    public Decoder(int latentChannels, int[] blockOutChannels, int layersPerBlock, int groups, int outChannels)
    {
        int channels = blockOutChannels[^1];
        ConvIn = AddModule("conv_in", new Conv2d(latentChannels, channels, 3, padding: 1));
        MidBlock = AddModule("mid_block", new UNetMidBlock2D(channels, groups, Encoder.Eps));
        UpBlocks = AddModule("up_blocks", new ModuleList<UpDecoderBlock2D>());
        for (int i = 0; i < blockOutChannels.Length; i++)
        {
            int output = blockOutChannels[^(i + 1)];
            bool last = i == blockOutChannels.Length - 1;
            UpBlocks.Add(new UpDecoderBlock2D(channels, output, layersPerBlock + 1, groups, Encoder.Eps, addUpsample: !last));
            channels = output;
        }
        ConvNormOut = AddModule("conv_norm_out", new GroupNorm(groups, channels, Encoder.Eps));
        ConvOut = AddModule("conv_out", new Conv2d(channels, outChannels, 3, padding: 1));
    }

    public Tensor Forward(Tensor z) => RunLayer(a => Run(a[0]), z);   // (N, latent, h, w) → (N, out, h·f, w·f)

    Tensor Run(Tensor z)
    {
        var h = MidBlock.Forward(ConvIn.Forward(z));
        foreach (var block in UpBlocks) h = block.Forward(h);
        return ConvOut.Forward(ConvNormOut.Forward(h, silu: true));
    }
}
