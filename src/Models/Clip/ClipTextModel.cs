// transformers' CLIPTextModel: token + position embeddings, pre-LN causal transformer layers, a final layer norm.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.Clip;

/// <summary>
/// The text encoder of Stable Diffusion. Parameter paths equal the keys of a text_encoder checkpoint
/// ("text_model.encoder.layers.0.self_attn.q_proj.weight"). Such a checkpoint may also hold the buffer
/// "text_model.embeddings.position_ids" (0..max_position_embeddings-1), which is no parameter here: positions are
/// always 0..L-1, so a loader skips it (<see cref="BufferKeys"/>).
/// </summary>
public sealed class ClipTextModel : Module
{
    public ClipTextTransformer TextModel { get; }

    public ClipTextModel(ClipTextConfig config)
    {
        Config = config;
        TextModel = AddModule("text_model", new ClipTextTransformer(config));
    }

    public ClipTextConfig Config { get; }

    /// <summary>last_hidden_state: the final layer norm of the last layer's output.</summary>
    public Tensor Forward(Tensor ids) => TextModel.Forward(ids);   // i32 (B, L) → (B, L, D)

    /// <summary>
    /// pooler_output: each row's hidden state at its end-of-text token, by transformers' rule since 4.31 (PR #24773,
    /// unchanged through the 4.4x releases): a config with eos_token_id 2 (SD 1.x's, from before that fix) pools at the
    /// argmax of the ids, where 49407 sits as CLIP's largest id; any other config at the first eos_token_id (0 when the
    /// row has none, as argmax of all-false). Tokenizer output pools at the same place under both rules.
    /// </summary>
    public Tensor Pool(Tensor lastHiddenState,   // (B, L, D)
        int[] ids)                               // (B·L) the input ids, row-major → (B, D)
    {
        int b = lastHiddenState.Dim(0), l = lastHiddenState.Dim(1);
        if (ids.Length != b * l) throw new ArgumentException($"clip pooling: {ids.Length} ids for a hidden state {lastHiddenState}");
        var rows = Enumerable.Range(0, b).Select(r =>
        {
            var row = ids.AsSpan(r * l, l);
            int at = Config.EosTokenId == 2 ? row.IndexOf(Max(row)) : Math.Max(0, row.IndexOf(Config.EosTokenId));
            return F.Reshape(F.Narrow(F.Narrow(lastHiddenState, 0, r, 1), 1, at, 1), 1, lastHiddenState.Dim(2));
        });
        return rows.Aggregate((x, y) => F.Concat(x, y, 0));
    }

    static int Max(ReadOnlySpan<int> values)
    {
        int max = int.MinValue;
        foreach (int v in values) max = Math.Max(max, v);
        return max;
    }

    /// <summary>Checkpoint keys of transformers' buffers, which are not parameters: StateDict.Load's ignore set.</summary>
    public static readonly IReadOnlySet<string> BufferKeys = new HashSet<string> { "text_model.embeddings.position_ids" };
}

/// <summary>transformers' CLIPTextTransformer ("text_model").</summary>
public sealed class ClipTextTransformer : Module
{
    public ClipTextEmbeddings Embeddings { get; }
    public ClipEncoder Encoder { get; }
    public LayerNorm FinalLayerNorm { get; }

    public ClipTextTransformer(ClipTextConfig c)
    {
        Embeddings = AddModule("embeddings", new ClipTextEmbeddings(c.VocabSize, c.MaxPositionEmbeddings, c.HiddenSize, c.InitializerFactor));
        Encoder = AddModule("encoder", new ClipEncoder(c));
        FinalLayerNorm = AddModule("final_layer_norm", new LayerNorm(c.HiddenSize, (float)c.LayerNormEps));
    }

    public Tensor Forward(Tensor ids) => FinalLayerNorm.Forward(Encoder.Forward(Embeddings.Forward(ids)));   // i32 (B, L) → (B, L, D)
}

/// <summary>transformers' CLIPTextEmbeddings: the token's row plus its position's row, both N(0, (0.02·factor)²) at init.</summary>
public sealed class ClipTextEmbeddings : Module
{
    public Embedding TokenEmbedding { get; }
    public Embedding PositionEmbedding { get; }
    public int MaxPositions { get; }

    public ClipTextEmbeddings(int vocabSize, int maxPositionEmbeddings, int hiddenSize, double initializerFactor)
    {
        MaxPositions = maxPositionEmbeddings;
        TokenEmbedding = AddModule("token_embedding", new Embedding(vocabSize, hiddenSize, new Init.Normal(0.02 * initializerFactor)));
        PositionEmbedding = AddModule("position_embedding", new Embedding(maxPositionEmbeddings, hiddenSize, new Init.Normal(0.02 * initializerFactor)));
    }

    public Tensor Forward(Tensor ids)   // i32 (B, L) → (B, L, D)
    {
        if (ids.Rank != 2 || ids.DType != DType.I32)
            throw new ArgumentException($"clip text model: input ids {ids} must be i32 (batch, tokens)");
        int length = ids.Dim(1);
        if (length > MaxPositions)
            throw new ArgumentException($"clip text model: {length} tokens exceed max_position_embeddings {MaxPositions}");
        var positions = F.Narrow(PositionEmbedding.Weight.Value, 0, 0, length);   // (L, D), broadcast over the batch
        return F.Add(TokenEmbedding.Forward(ids), positions);
    }
}

/// <summary>transformers' CLIPEncoder: the stack of layers ("layers.{i}").</summary>
public sealed class ClipEncoder : Module
{
    public ModuleList<ClipEncoderLayer> Layers { get; }

    public ClipEncoder(ClipTextConfig c)
    {
        Layers = AddModule("layers", new ModuleList<ClipEncoderLayer>());
        for (int i = 0; i < c.NumHiddenLayers; i++)
            Layers.Add(new ClipEncoderLayer(c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.HiddenAct, (float)c.LayerNormEps,
                c.NumHiddenLayers, c.InitializerFactor));
    }

    public Tensor Forward(Tensor h)   // (B, L, D) → (B, L, D)
    {
        foreach (var layer in Layers) h = RunBlock(a => layer.Forward(a[0]), h);
        return h;
    }
}
