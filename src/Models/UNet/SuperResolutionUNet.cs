// The x4-upscaler-style super-resolution UNet in pixel space: the noisy high-res image and the upsampled low-res image side by side.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;

namespace DreamBooth.Models.UNet;

/// <summary>
/// A <see cref="UNet2DConditionModel"/> whose input channels are the image's (out_channels) followed by the low-res
/// conditioning image's (in_channels − out_channels), and whose class labels (num_class_embeds, or class_embed_type
/// "timestep") are the noise level the low-res image was augmented with, as in SD's x4 upscaler and DeepFloyd IF's
/// stage II. Running in pixel space, the low-res image is brought
/// to the sample's size by repeated nearest 2× upsampling before the channel concat. The parameters are the UNet's,
/// under the UNet's own keys (a diffusers unet/ folder).
/// </summary>
public sealed class SuperResolutionUNet
{
    public UNet2DConditionModel Unet { get; }
    public int ImageChannels => Unet.Config.OutChannels;
    public int LowResChannels => Unet.Config.InChannels - Unet.Config.OutChannels;

    /// <summary>Wraps a UNet whose config has the extra low-res input channels and num_class_embeds.</summary>
    public SuperResolutionUNet(UNet2DConditionModel unet)
    {
        var config = unet.Config;
        if (config.InChannels <= config.OutChannels)
            throw new ArgumentException($"super-resolution unet: in_channels {config.InChannels} must exceed out_channels " +
                                        $"{config.OutChannels} by the low-res image's channels");
        if (!config.EmbedsClassLabels)
            throw new ArgumentException("super-resolution unet: the config needs num_class_embeds or class_embed_type \"timestep\" (the noise-level classes)");
        Unet = unet;
    }

    /// <summary>Whether a UNet config describes a super-resolution UNet (extra input channels and noise-level classes).</summary>
    public static bool Describes(UNet2DConditionConfig config) => config.InChannels > config.OutChannels && config.EmbedsClassLabels;

    /// <param name="noiseLevels">the low-res image's noise-level class per sample (Pipeline.LowResAugmentation maps levels to classes)</param>
    public Tensor Forward(Tensor noisy,   // (N, C_img, H, W)
        Tensor lowRes,                    // (N, C_low, H/2^k, W/2^k)
        float[] timesteps,                // (N)
        Tensor encoderHiddenStates,       // (N, L, cross_attention_dim)
        int[] noiseLevels)                // (N)
    {                                     // → (N, C_img, H, W)
        if (noisy.Rank != 4 || lowRes.Rank != 4 || noisy.Dim(1) != ImageChannels || lowRes.Dim(1) != LowResChannels ||
            lowRes.Dim(0) != noisy.Dim(0))
            throw new ArgumentException($"super-resolution unet: noisy {noisy} and low-res {lowRes} are not " +
                                        $"(N, {ImageChannels}, H, W) and (N, {LowResChannels}, h, w)");
        var up = lowRes;
        while (up.Dim(2) < noisy.Dim(2) && up.Dim(3) < noisy.Dim(3)) up = F.UpsampleNearest2x(up);
        if (up.Dim(2) != noisy.Dim(2) || up.Dim(3) != noisy.Dim(3))
            throw new ArgumentException($"super-resolution unet: low-res {lowRes} is not the size of {noisy} divided by a power of 2");
        return Unet.Forward(F.Concat(noisy, up, 1), timesteps, encoderHiddenStates, noiseLevels);
    }
}
