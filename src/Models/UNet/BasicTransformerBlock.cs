// diffusers' BasicTransformerBlock: pre-norm self-attention, cross-attention and GEGLU feed-forward, each with a residual.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>
/// x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)). With onlyCrossAttention attn1 also attends
/// to the context (its keys and values are projected from contextDim). LayerNorm eps 1e-5, as diffusers' default.
/// </summary>
public sealed class BasicTransformerBlock : Module
{
    const float NormEps = 1e-5f;
    readonly bool _onlyCrossAttention;

    public LayerNorm Norm1 { get; }
    public Attention Attn1 { get; }
    public LayerNorm Norm2 { get; }
    public Attention Attn2 { get; }
    public LayerNorm Norm3 { get; }
    public FeedForward Ff { get; }

    public BasicTransformerBlock(int dim, int heads, int headDim, int contextDim, bool onlyCrossAttention)
    {
        _onlyCrossAttention = onlyCrossAttention;
        Norm1 = AddModule("norm1", new LayerNorm(dim, NormEps));
        Attn1 = AddModule("attn1", new Attention(dim, heads, headDim, onlyCrossAttention ? contextDim : null));
        Norm2 = AddModule("norm2", new LayerNorm(dim, NormEps));
        Attn2 = AddModule("attn2", new Attention(dim, heads, headDim, contextDim));
        Norm3 = AddModule("norm3", new LayerNorm(dim, NormEps));
        Ff = AddModule("ff", new FeedForward(dim));
    }

    public Tensor Forward(Tensor x,   // (B, L, dim)
        Tensor context)               // (B, Lk, contextDim)
    {                                 // → (B, L, dim)
        x = F.Add(Attn1.Forward(Norm1.Forward(x), _onlyCrossAttention ? context : null), x);
        x = F.Add(Attn2.Forward(Norm2.Forward(x), context), x);
        return F.Add(Ff.Forward(Norm3.Forward(x)), x);
    }
}
