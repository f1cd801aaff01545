// One CLIP text transformer layer: pre-LN causal self-attention and a two-layer MLP, each with a residual.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Clip;

/// <summary>transformers' CLIPAttention: k/v/q/out projections of width D = heads·head_dim; scores scaled by
/// head_dim^-½, each token attending to itself and the tokens before it (the text model's causal mask).</summary>
public sealed class ClipAttention : Module
{
    readonly int _heads;

    public Linear KProj { get; }
    public Linear VProj { get; }
    public Linear QProj { get; }
    public Linear OutProj { get; }

    /// <param name="layers">num_hidden_layers, which sets the projections' initial scale</param>
    public ClipAttention(int hidden, int heads, int layers, double initializerFactor)
    {
        if (heads <= 0 || hidden % heads != 0)
            throw new ArgumentException($"clip attention: hidden size {hidden} is not a multiple of {heads} heads");
        _heads = heads;
        double inStd = Math.Pow(hidden, -0.5) * Math.Pow(2.0 * layers, -0.5) * initializerFactor;
        double outStd = Math.Pow(hidden, -0.5) * initializerFactor;
        KProj = AddModule("k_proj", new Linear(hidden, hidden, weightInit: new Init.Normal(inStd), biasInit: Init.Zeros));
        VProj = AddModule("v_proj", new Linear(hidden, hidden, weightInit: new Init.Normal(inStd), biasInit: Init.Zeros));
        QProj = AddModule("q_proj", new Linear(hidden, hidden, weightInit: new Init.Normal(inStd), biasInit: Init.Zeros));
        OutProj = AddModule("out_proj", new Linear(hidden, hidden, weightInit: new Init.Normal(outStd), biasInit: Init.Zeros));
    }

    public Tensor Forward(Tensor x)   // (B, L, D) → (B, L, D)
    {
        var attended = F.Attention(QProj.Forward(x), KProj.Forward(x), VProj.Forward(x), _heads, causal: true);
        return OutProj.Forward(attended);
    }
}

/// <summary>transformers' CLIPMLP: fc1 (D → intermediate), the config's activation, fc2 (intermediate → D).</summary>
public sealed class ClipMlp : Module
{
    readonly Func<Tensor, Tensor> _activation;

    public Linear Fc1 { get; }
    public Linear Fc2 { get; }

    public ClipMlp(int hidden, int intermediate, string hiddenAct, int layers, double initializerFactor)
    {
        _activation = Activation(hiddenAct);
        double fcStd = Math.Pow(2.0 * hidden, -0.5) * initializerFactor;
        double inStd = Math.Pow(hidden, -0.5) * Math.Pow(2.0 * layers, -0.5) * initializerFactor;
        Fc1 = AddModule("fc1", new Linear(hidden, intermediate, weightInit: new Init.Normal(fcStd), biasInit: Init.Zeros));
        Fc2 = AddModule("fc2", new Linear(intermediate, hidden, weightInit: new Init.Normal(inStd), biasInit: Init.Zeros));
    }

    public Tensor Forward(Tensor x) => Fc2.Forward(_activation(Fc1.Forward(x)));   // (..., D) → (..., D)

    /// <summary>transformers' ACT2FN names of the activations SD's text encoders use (1.x: quick_gelu, 2.x: gelu).</summary>
    static Func<Tensor, Tensor> Activation(string name) => name switch
    {
        "quick_gelu" => F.QuickGelu,
        "gelu" => F.Gelu,
        _ => throw new ArgumentException($"clip mlp: hidden_act \"{name}\" is not supported (quick_gelu, gelu)"),
    };
}

/// <summary>transformers' CLIPEncoderLayer: h += attn(layer_norm1(h)); h += mlp(layer_norm2(h)).</summary>
public sealed class ClipEncoderLayer : Module
{
    public ClipAttention SelfAttn { get; }
    public LayerNorm LayerNorm1 { get; }
    public ClipMlp Mlp { get; }
    public LayerNorm LayerNorm2 { get; }

    public ClipEncoderLayer(int hidden, int intermediate, int heads, string hiddenAct, float layerNormEps, int layers,
        double initializerFactor)
    {
        SelfAttn = AddModule("self_attn", new ClipAttention(hidden, heads, layers, initializerFactor));
        LayerNorm1 = AddModule("layer_norm1", new LayerNorm(hidden, layerNormEps));
        Mlp = AddModule("mlp", new ClipMlp(hidden, intermediate, hiddenAct, layers, initializerFactor));
        LayerNorm2 = AddModule("layer_norm2", new LayerNorm(hidden, layerNormEps));
    }

    public Tensor Forward(Tensor x)   // (B, L, D) → (B, L, D)
    {
        var h = F.Add(x, SelfAttn.Forward(LayerNorm1.Forward(x)));
        return F.Add(h, Mlp.Forward(LayerNorm2.Forward(h)));
    }
}
