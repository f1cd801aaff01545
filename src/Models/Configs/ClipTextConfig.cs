// The CLIPTextModel config (text_encoder/config.json), with transformers' CLIPTextConfig defaults for missing keys.
namespace DreamBooth.Models.Configs;

/// <summary>Property names are the config keys in PascalCase; initial values are transformers' defaults.
/// BosTokenId/EosTokenId matter to the pooled output: old configs (SD 1.x: eos_token_id 2) pool at the highest id.</summary>
public sealed record ClipTextConfig
{
    public const string ModelType = "clip_text_model";

    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int ProjectionDim { get; init; } = 512;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public double AttentionDropout { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public double InitializerFactor { get; init; } = 1.0;
    public int PadTokenId { get; init; } = 1;
    public int BosTokenId { get; init; } = 49406;
    public int EosTokenId { get; init; } = 49407;

    public int HeadDim => HiddenSize / NumAttentionHeads;

    public static ClipTextConfig Load(string path)
    {
        var r = ConfigReader.Open(path);
        var modelType = r.String("model_type", ModelType);
        if (modelType != ModelType) throw r.Error("model_type", $"is \"{modelType}\": this is not a CLIP text encoder config");
        var d = new ClipTextConfig();
        var config = new ClipTextConfig
        {
            VocabSize = r.PositiveInt("vocab_size", d.VocabSize),
            HiddenSize = r.PositiveInt("hidden_size", d.HiddenSize),
            IntermediateSize = r.PositiveInt("intermediate_size", d.IntermediateSize),
            ProjectionDim = r.PositiveInt("projection_dim", d.ProjectionDim),
            NumHiddenLayers = r.PositiveInt("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = r.PositiveInt("num_attention_heads", d.NumAttentionHeads),
            MaxPositionEmbeddings = r.PositiveInt("max_position_embeddings", d.MaxPositionEmbeddings),
            HiddenAct = r.OneOf("hidden_act", r.String("hidden_act", d.HiddenAct), "quick_gelu", "gelu"),
            LayerNormEps = r.Double("layer_norm_eps", d.LayerNormEps),
            AttentionDropout = r.Double("attention_dropout", d.AttentionDropout),
            InitializerRange = r.Double("initializer_range", d.InitializerRange),
            InitializerFactor = r.Double("initializer_factor", d.InitializerFactor),
            PadTokenId = r.Int("pad_token_id", d.PadTokenId),
            BosTokenId = r.Int("bos_token_id", d.BosTokenId),
            EosTokenId = r.Int("eos_token_id", d.EosTokenId),
        };
        if (config.HiddenSize % config.NumAttentionHeads != 0)
            throw r.Error("num_attention_heads", $"is {config.NumAttentionHeads}, which does not divide hidden_size {config.HiddenSize}");
        return config;
    }

    public string ToJson() => ConfigWriter.ToJson(w =>
    {
        w.Strings("architectures", ["CLIPTextModel"]);
        w.WriteNumber("attention_dropout", AttentionDropout);
        w.WriteNumber("bos_token_id", BosTokenId);
        w.WriteNumber("eos_token_id", EosTokenId);
        w.WriteString("hidden_act", HiddenAct);
        w.WriteNumber("hidden_size", HiddenSize);
        w.WriteNumber("initializer_factor", InitializerFactor);
        w.WriteNumber("initializer_range", InitializerRange);
        w.WriteNumber("intermediate_size", IntermediateSize);
        w.WriteNumber("layer_norm_eps", LayerNormEps);
        w.WriteNumber("max_position_embeddings", MaxPositionEmbeddings);
        w.WriteString("model_type", ModelType);
        w.WriteNumber("num_attention_heads", NumAttentionHeads);
        w.WriteNumber("num_hidden_layers", NumHiddenLayers);
        w.WriteNumber("pad_token_id", PadTokenId);
        w.WriteNumber("projection_dim", ProjectionDim);
        w.WriteNumber("vocab_size", VocabSize);
    });

    public void Save(string path) => ConfigWriter.Save(path, ToJson());
}
