// diffusers' Attention (attention_processor.py) as the UNet's transformers use it: q/k/v projections without bias, multi-head SDPA, to_out.0.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>
/// Self-attention when no context is given, else cross-attention with keys and values projected from the context
/// (contextDim wide). Heads are interleaved in the projection's output as F.Attention expects; the softmax scale is
/// 1/√(dim/heads). upcast_attention only matters in half precision, where the kernel already accumulates in f32.
/// </summary>
public sealed class Attention : Module
{
    public int Heads { get; }
    public Linear ToQ { get; }
    public Linear ToK { get; }
    public Linear ToV { get; }
    public ModuleList<Linear> ToOut { get; }

    public Attention(int queryDim, int heads, int headDim, int? contextDim)
    {
        Heads = heads;
        int inner = heads * headDim;
        ToQ = AddModule("to_q", new Linear(queryDim, inner, bias: false));
        ToK = AddModule("to_k", new Linear(contextDim ?? queryDim, inner, bias: false));
        ToV = AddModule("to_v", new Linear(contextDim ?? queryDim, inner, bias: false));
        ToOut = AddModule("to_out", new ModuleList<Linear>());
        ToOut.Add(new Linear(inner, queryDim));              // to_out.1 is a dropout
    }

    public Tensor Forward(Tensor x,   // (B, L, queryDim)
        Tensor? context = null)       // (B, Lk, contextDim)
    {                                 // → (B, L, queryDim)
        var kv = context ?? x;
        var o = F.Attention(ToQ.Forward(x), ToK.Forward(kv), ToV.Forward(kv), Heads);
        return ToOut[0].Forward(o);
    }
}
