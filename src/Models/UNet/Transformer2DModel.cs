// diffusers' Transformer2DModel on continuous input: group norm, proj_in, transformer blocks over the H·W tokens, proj_out, residual.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>
/// x (N, C, H, W) → GroupNorm (eps 1e-6) → proj_in → tokens (N, H·W, inner) → transformer_blocks → proj_out → + x.
/// proj_in/proj_out are 1×1 convolutions (SD 1.x), or Linear layers on the tokens when useLinearProjection (SD 2.x);
/// both compute the same map, only the weight shapes (and so the checkpoint keys' shapes) differ.
/// </summary>
public sealed class Transformer2DModel : Module
{
    const float NormEps = 1e-6f;

    readonly Conv2d? _projInConv, _projOutConv;
    readonly Linear? _projInLinear, _projOutLinear;

    public GroupNorm Norm { get; }
    public ModuleList<BasicTransformerBlock> TransformerBlocks { get; }

    public Transformer2DModel(int channels, int heads, int contextDim, int groups, bool useLinearProjection,
        bool onlyCrossAttention, int layers = 1)
    {
        if (heads <= 0 || channels % heads != 0)
            throw new ArgumentException($"unet transformer: {channels} channels do not split into {heads} attention heads");
        int headDim = channels / heads, inner = heads * headDim;
        Norm = AddModule("norm", new GroupNorm(groups, channels, NormEps));
        if (useLinearProjection) _projInLinear = AddModule("proj_in", new Linear(channels, inner));
        else _projInConv = AddModule("proj_in", new Conv2d(channels, inner, 1));
        TransformerBlocks = AddModule("transformer_blocks", new ModuleList<BasicTransformerBlock>());
        for (int i = 0; i < layers; i++)
            TransformerBlocks.Add(new BasicTransformerBlock(inner, heads, headDim, contextDim, onlyCrossAttention));
        if (useLinearProjection) _projOutLinear = AddModule("proj_out", new Linear(inner, channels));
        else _projOutConv = AddModule("proj_out", new Conv2d(inner, channels, 1));
    }

    public Tensor Forward(Tensor x,   // (N, C, H, W)
        Tensor context)               // (N, Lk, contextDim)
    {                                 // → (N, C, H, W)
        int n = x.Dim(0), c = x.Dim(1), height = x.Dim(2), width = x.Dim(3);
        var h = Norm.Forward(x);
        h = _projInConv?.Forward(h) ?? h;
        int inner = h.Dim(1);
        h = F.Reshape(F.Permute(h, 0, 2, 3, 1), n, height * width, inner);          // (N, H·W, C)
        h = _projInLinear?.Forward(h) ?? h;
        foreach (var block in TransformerBlocks) h = block.Forward(h, context);
        h = _projOutLinear?.Forward(h) ?? h;
        h = F.Permute(F.Reshape(h, n, height, width, h.Dim(2)), 0, 3, 1, 2);          // (N, C, H, W)
        h = _projOutConv?.Forward(h) ?? h;
        return F.Add(h, x);
    }
}
