// diffusers' AutoencoderKL: image → diagonal Gaussian posterior over latents → image, with SD's checkpoint keys.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Vae;

/// <summary>The posterior q(z | x) = N(Mean, exp(LogVar)), both (N, latent, h, w).</summary>
public sealed record Posterior(Tensor Mean, Tensor LogVar);

/// <summary>
/// The Stable Diffusion VAE. Parameter paths equal the keys of a vae checkpoint ("encoder.down_blocks.0.resnets.0.conv1.weight",
/// "encoder.mid_block.attentions.0.to_q.weight", "quant_conv.weight"). Latents fed to the UNet are
/// Sample(Encode(x))·<see cref="ScalingFactor"/>; Decode takes them divided by it again.
/// </summary>
public sealed class AutoencoderKL : Module
{
    public Encoder Encoder { get; }
    public Decoder Decoder { get; }
    public Conv2d QuantConv { get; }
    public Conv2d PostQuantConv { get; }
    public int LatentChannels { get; }
    public float ScalingFactor { get; }

    public AutoencoderKL(AutoencoderKLConfig c)
    {
        if (c.BlockOutChannels.Length == 0) throw new ArgumentException("autoencoder: block_out_channels is empty");
        LatentChannels = c.LatentChannels;
        ScalingFactor = (float)c.ScalingFactor;
        Encoder = AddModule("encoder", new Encoder(c.InChannels, c.BlockOutChannels, c.LayersPerBlock, c.NormNumGroups, c.LatentChannels));
        Decoder = AddModule("decoder", new Decoder(c.LatentChannels, c.BlockOutChannels, c.LayersPerBlock, c.NormNumGroups, c.OutChannels));
        QuantConv = AddModule("quant_conv", new Conv2d(2 * c.LatentChannels, 2 * c.LatentChannels, 1));
        PostQuantConv = AddModule("post_quant_conv", new Conv2d(c.LatentChannels, c.LatentChannels, 1));
    }

    /// <summary>The posterior of images x (N, in, H, W): moments (N, 2·latent, h, w) split into mean and log-variance.</summary>
    public Posterior Encode(Tensor x)
    {
        var (mean, logVar) = F.Chunk2(QuantConv.Forward(Encoder.Forward(x)), 1);
        return new Posterior(mean, logVar);
    }

    /// <summary>Images (N, out, H, W) from unscaled latents z (N, latent, h, w).</summary>
    public Tensor Decode(Tensor z) => Decoder.Forward(PostQuantConv.Forward(z));

    /// <summary>z = mean + exp(½·clamp(logvar, −30, 20))·noise, noise (N, latent, h, w) ~ N(0, 1). The VAE is frozen in
    /// training, so the draw carries no gradient: the standard deviation is taken on the host.</summary>
    public static Tensor Sample(Posterior posterior, Tensor noise)
    {
        var (mean, logVar) = posterior;
        if (!noise.Shape.SequenceEqual(mean.Shape))
            throw new ArgumentException($"autoencoder sample: noise {noise} does not match the posterior mean {mean}");
        if (Tape.Needs(mean, logVar))
            throw new InvalidOperationException("autoencoder sample: the posterior requires grad, but sampling is not differentiable; encode under Tape.NoGrad()");
        var std = logVar.ToArray();
        for (int i = 0; i < std.Length; i++) std[i] = MathF.Exp(0.5f * Math.Clamp(std[i], -30f, 20f));
        return F.Add(mean, F.Mul(Tensor.FromArray(mean.Backend, std, mean.Shape.ToArray()), noise));
    }

    /// <summary>The current key for a key of a checkpoint written before diffusers 0.14, whose attention projections were
    /// "query", "key", "value" and "proj_attn" ("encoder.mid_block.attentions.0.query.weight" →
    /// "encoder.mid_block.attentions.0.to_q.weight"); any other key is returned unchanged.</summary>
    public static string MapLegacyKey(string key)
    {
        var parts = key.Split('.');
        for (int i = 2; i < parts.Length; i++)
        {
            if (parts[i - 2] != "attentions" || parts[i - 1].Length == 0 || !parts[i - 1].All(char.IsAsciiDigit)) continue;
            string? renamed = parts[i] switch
            {
                "query" => "to_q",
                "key" => "to_k",
                "value" => "to_v",
                "proj_attn" => "to_out.0",
                _ => null,
            };
            if (renamed == null) continue;
            parts[i] = renamed;
            return string.Join('.', parts);
        }
        return key;
    }
}
