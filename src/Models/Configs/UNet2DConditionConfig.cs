// The UNet2DConditionModel config (unet/config.json): the fields SD 1.x/2.x and the x4 upscaler use, with diffusers' defaults.
namespace DreamBooth.Models.Configs;

/// <summary>
/// Property names are the config keys in PascalCase; initial values are diffusers' defaults for a missing key.
/// Quirk kept from diffusers: in SD 1.x/2.x configs "attention_head_dim" holds the number of attention heads per block
/// (num_attention_heads, when set, takes precedence), so <see cref="HeadsPerBlock"/> is what a model builder wants.
/// </summary>
public sealed record UNet2DConditionConfig
{
    public const string ClassName = "UNet2DConditionModel";
    static readonly string[] DownTypes = ["CrossAttnDownBlock2D", "DownBlock2D"];
    static readonly string[] UpTypes = ["CrossAttnUpBlock2D", "UpBlock2D"];

    public int? SampleSize { get; init; }
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public bool CenterInputSample { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    public string MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    /// <summary>Per down block (the up blocks use it reversed).</summary>
    public bool[] OnlyCrossAttention { get; init; } = [false, false, false, false];
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    public int LayersPerBlock { get; init; } = 2;
    public int DownsamplePadding { get; init; } = 1;
    public double MidBlockScaleFactor { get; init; } = 1.0;
    public string ActFn { get; init; } = "silu";
    public int NormNumGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    public int CrossAttentionDim { get; init; } = 1280;
    public int TransformerLayersPerBlock { get; init; } = 1;
    /// <summary>Per down block; see the class summary.</summary>
    public int[] AttentionHeadDim { get; init; } = [8, 8, 8, 8];
    /// <summary>Per down block, or null to use <see cref="AttentionHeadDim"/>.</summary>
    public int[]? NumAttentionHeads { get; init; }
    public bool DualCrossAttention { get; init; }
    public bool UseLinearProjection { get; init; }
    public string? ClassEmbedType { get; init; }
    public int? NumClassEmbeds { get; init; }
    /// <summary>Whether the UNet takes class labels: a table of num_class_embeds rows, or class_embed_type "timestep".</summary>
    public bool EmbedsClassLabels => NumClassEmbeds is not null || ClassEmbedType is "timestep";
    public bool UpcastAttention { get; init; }
    public string ResnetTimeScaleShift { get; init; } = "default";
    public string TimeEmbeddingType { get; init; } = "positional";
    /// <summary>null, or "text": the prompt's states attention-pooled into the time embedding (Imagen's conditioning).</summary>
    public string? AdditionEmbedType { get; init; }
    public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    /// <summary>How much the UNet shrinks its sample (2 per down block but the last): its sides must be multiples of it.</summary>
    public int Downsampling => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Attention heads of each down block's transformers.</summary>
    public int[] HeadsPerBlock => NumAttentionHeads ?? AttentionHeadDim;

    public static UNet2DConditionConfig Load(string path)
    {
        var r = ConfigReader.Open(path);
        r.ExpectClass(ClassName);
        var d = new UNet2DConditionConfig();
        var (down, up, channels) = r.BlockLayout(d.DownBlockTypes, d.UpBlockTypes, d.BlockOutChannels, DownTypes, UpTypes);
        int blocks = down.Length;
        var config = new UNet2DConditionConfig
        {
            SampleSize = r.NullableInt("sample_size", d.SampleSize),
            InChannels = r.PositiveInt("in_channels", d.InChannels),
            OutChannels = r.PositiveInt("out_channels", d.OutChannels),
            CenterInputSample = r.Bool("center_input_sample", d.CenterInputSample),
            FlipSinToCos = r.Bool("flip_sin_to_cos", d.FlipSinToCos),
            FreqShift = r.Int("freq_shift", d.FreqShift),
            DownBlockTypes = down,
            MidBlockType = r.OneOf("mid_block_type", r.String("mid_block_type", d.MidBlockType), "UNetMidBlock2DCrossAttn"),
            UpBlockTypes = up,
            OnlyCrossAttention = r.BoolPerBlock("only_cross_attention", false, blocks),
            BlockOutChannels = channels,
            LayersPerBlock = r.PositiveInt("layers_per_block", d.LayersPerBlock),
            DownsamplePadding = r.OneOf("downsample_padding", r.Int("downsample_padding", d.DownsamplePadding), 0, 1),
            MidBlockScaleFactor = r.Double("mid_block_scale_factor", d.MidBlockScaleFactor),
            ActFn = r.OneOf("act_fn", r.String("act_fn", d.ActFn), "silu"),
            NormNumGroups = r.PositiveInt("norm_num_groups", d.NormNumGroups),
            NormEps = r.Double("norm_eps", d.NormEps),
            CrossAttentionDim = r.PositiveInt("cross_attention_dim", d.CrossAttentionDim),
            TransformerLayersPerBlock = r.PositiveInt("transformer_layers_per_block", d.TransformerLayersPerBlock),
            AttentionHeadDim = r.IntPerBlock("attention_head_dim", 8, blocks),
            NumAttentionHeads = r.Has("num_attention_heads") ? r.IntPerBlock("num_attention_heads", 0, blocks) : null,
            DualCrossAttention = r.Bool("dual_cross_attention", d.DualCrossAttention),
            UseLinearProjection = r.Bool("use_linear_projection", d.UseLinearProjection),
            ClassEmbedType = r.NullableString("class_embed_type", d.ClassEmbedType),
            NumClassEmbeds = r.NullableInt("num_class_embeds", d.NumClassEmbeds),
            UpcastAttention = r.Bool("upcast_attention", d.UpcastAttention),
            ResnetTimeScaleShift = r.OneOf("resnet_time_scale_shift", r.String("resnet_time_scale_shift", d.ResnetTimeScaleShift), "default"),
            TimeEmbeddingType = r.OneOf("time_embedding_type", r.String("time_embedding_type", d.TimeEmbeddingType), "positional"),
            AdditionEmbedType = r.NullableString("addition_embed_type", d.AdditionEmbedType),
            AdditionEmbedTypeNumHeads = r.PositiveInt("addition_embed_type_num_heads", d.AdditionEmbedTypeNumHeads),
        };
        if (config.AdditionEmbedType is not (null or "text"))
            throw r.Error("addition_embed_type", $"is \"{config.AdditionEmbedType}\", which is not supported (only null, or \"text\")");
        if (config.AdditionEmbedType is "text" && config.CrossAttentionDim % config.AdditionEmbedTypeNumHeads != 0)
            throw r.Error("addition_embed_type_num_heads", $"({config.AdditionEmbedTypeNumHeads}) does not divide cross_attention_dim {config.CrossAttentionDim}");
        if (config.DualCrossAttention) throw r.Error("dual_cross_attention", "is true, which is not supported");
        if (config.ClassEmbedType is not (null or "timestep"))
            throw r.Error("class_embed_type", $"is \"{config.ClassEmbedType}\", which is not supported (only null, with num_class_embeds for a class table, or \"timestep\")");
        r.ExpectGroupsDivide(channels, config.NormNumGroups);
        return config;
    }

    public string ToJson() => ConfigWriter.ToJson(w =>
    {
        w.WriteString("_class_name", ClassName);
        w.WriteString("act_fn", ActFn);
        w.NullableString("addition_embed_type", AdditionEmbedType);
        w.WriteNumber("addition_embed_type_num_heads", AdditionEmbedTypeNumHeads);
        w.Ints("attention_head_dim", AttentionHeadDim);
        w.Ints("block_out_channels", BlockOutChannels);
        w.WriteBoolean("center_input_sample", CenterInputSample);
        w.NullableString("class_embed_type", ClassEmbedType);
        w.WriteNumber("cross_attention_dim", CrossAttentionDim);
        w.Strings("down_block_types", DownBlockTypes);
        w.WriteNumber("downsample_padding", DownsamplePadding);
        w.WriteBoolean("dual_cross_attention", DualCrossAttention);
        w.WriteBoolean("flip_sin_to_cos", FlipSinToCos);
        w.WriteNumber("freq_shift", FreqShift);
        w.WriteNumber("in_channels", InChannels);
        w.WriteNumber("layers_per_block", LayersPerBlock);
        w.WriteNumber("mid_block_scale_factor", MidBlockScaleFactor);
        w.WriteString("mid_block_type", MidBlockType);
        w.WriteNumber("norm_eps", NormEps);
        w.WriteNumber("norm_num_groups", NormNumGroups);
        if (NumAttentionHeads is null) w.WriteNull("num_attention_heads"); else w.Ints("num_attention_heads", NumAttentionHeads);
        w.NullableInt("num_class_embeds", NumClassEmbeds);
        w.WriteStartArray("only_cross_attention");
        foreach (bool b in OnlyCrossAttention) w.WriteBooleanValue(b);
        w.WriteEndArray();
        w.WriteNumber("out_channels", OutChannels);
        w.WriteString("resnet_time_scale_shift", ResnetTimeScaleShift);
        w.NullableInt("sample_size", SampleSize);
        w.WriteString("time_embedding_type", TimeEmbeddingType);
        w.WriteNumber("transformer_layers_per_block", TransformerLayersPerBlock);
        w.Strings("up_block_types", UpBlockTypes);
        w.WriteBoolean("upcast_attention", UpcastAttention);
        w.WriteBoolean("use_linear_projection", UseLinearProjection);
    });

    public void Save(string path) => ConfigWriter.Save(path, ToJson());
}
