// The autoencoder's mid-block attention: one head over all pixels, with a group norm in front and a residual.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Vae;

/// <summary>diffusers' Attention as UNetMidBlock2D builds it for the VAE (heads = 1, dim_head = C, bias on every
/// projection, residual_connection, rescale_output_factor 1): x + to_out.0(attn(to_q(n), to_k(n), to_v(n))) where
/// n = group_norm(x) read as HW tokens of width C. Old checkpoints name the projections query/key/value/proj_attn;
/// <see cref="AutoencoderKL.MapLegacyKey"/> renames them.</summary>
public sealed class VaeAttention : Module
{
    public GroupNorm GroupNorm { get; }
    public Linear ToQ { get; }
    public Linear ToK { get; }
    public Linear ToV { get; }
    public ModuleList<Linear> ToOut { get; }

    public VaeAttention(int channels, int groups, float eps)
    {
        GroupNorm = AddModule("group_norm", new GroupNorm(groups, channels, eps));
        ToQ = AddModule("to_q", new Linear(channels, channels));
        ToK = AddModule("to_k", new Linear(channels, channels));
        ToV = AddModule("to_v", new Linear(channels, channels));
        ToOut = AddModule("to_out", new ModuleList<Linear>());
        ToOut.Add(new Linear(channels, channels));
    }

    public Tensor Forward(Tensor x)   // (N, C, H, W) → (N, C, H, W)
    {
        int n = x.Dim(0), c = x.Dim(1), height = x.Dim(2), width = x.Dim(3);
        var tokens = F.Permute(F.Reshape(GroupNorm.Forward(x), n, c, height * width), 0, 2, 1);   // (N, HW, C)
        // The one head is C wide (512 in SD), beyond the fused attention kernel's head-dim limit (256), so the scores
        // are formed explicitly: (N, HW, HW), 64 MB per image for 64×64 latents.
        var q = F.Scale(ToQ.Forward(tokens), 1f / MathF.Sqrt(c));
        var scores = F.MatMul(q, F.Permute(ToK.Forward(tokens), 0, 2, 1));              // (N, HW, HW)
        var attended = F.MatMul(F.Softmax(scores), ToV.Forward(tokens));                 // (N, HW, C)
        var h = F.Reshape(F.Permute(ToOut[0].Forward(attended), 0, 2, 1), n, c, height, width);
        return F.Add(x, h);
    }
}
