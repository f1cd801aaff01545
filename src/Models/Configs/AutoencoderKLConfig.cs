// The AutoencoderKL config (vae/config.json), with diffusers' defaults for missing keys.
namespace DreamBooth.Models.Configs;

/// <summary>Property names are the config keys in PascalCase; initial values are diffusers' defaults.</summary>
public sealed record AutoencoderKLConfig
{
    public const string ClassName = "AutoencoderKL";

    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    public int[] BlockOutChannels { get; init; } = [64];
    public int LayersPerBlock { get; init; } = 1;
    public string ActFn { get; init; } = "silu";
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 32;
    /// <summary>Latents are multiplied by this before the UNet sees them (and divided after sampling).</summary>
    public double ScalingFactor { get; init; } = 0.18215;
    /// <summary>Whether fp16 pipelines run this VAE in f32.</summary>
    public bool ForceUpcast { get; init; } = true;

    public static AutoencoderKLConfig Load(string path)
    {
        var r = ConfigReader.Open(path);
        r.ExpectClass(ClassName);
        var d = new AutoencoderKLConfig();
        var (down, up, channels) = r.BlockLayout(d.DownBlockTypes, d.UpBlockTypes, d.BlockOutChannels,
            downTypes: ["DownEncoderBlock2D"], upTypes: ["UpDecoderBlock2D"]);
        var config = new AutoencoderKLConfig
        {
            InChannels = r.PositiveInt("in_channels", d.InChannels),
            OutChannels = r.PositiveInt("out_channels", d.OutChannels),
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = channels,
            LayersPerBlock = r.PositiveInt("layers_per_block", d.LayersPerBlock),
            ActFn = r.OneOf("act_fn", r.String("act_fn", d.ActFn), "silu"),
            LatentChannels = r.PositiveInt("latent_channels", d.LatentChannels),
            NormNumGroups = r.PositiveInt("norm_num_groups", d.NormNumGroups),
            SampleSize = r.PositiveInt("sample_size", d.SampleSize),
            ScalingFactor = r.Double("scaling_factor", d.ScalingFactor),
            ForceUpcast = r.Bool("force_upcast", d.ForceUpcast),
        };
        r.ExpectGroupsDivide(channels, config.NormNumGroups);
        return config;
    }

    public string ToJson() => ConfigWriter.ToJson(w =>
    {
        w.WriteString("_class_name", ClassName);
        w.WriteString("act_fn", ActFn);
        w.Ints("block_out_channels", BlockOutChannels);
        w.Strings("down_block_types", DownBlockTypes);
        w.WriteBoolean("force_upcast", ForceUpcast);
        w.WriteNumber("in_channels", InChannels);
        w.WriteNumber("latent_channels", LatentChannels);
        w.WriteNumber("layers_per_block", LayersPerBlock);
        w.WriteNumber("norm_num_groups", NormNumGroups);
        w.WriteNumber("out_channels", OutChannels);
        w.WriteNumber("sample_size", SampleSize);
        w.WriteNumber("scaling_factor", ScalingFactor);
        w.Strings("up_block_types", UpBlockTypes);
    });

    public void Save(string path) => ConfigWriter.Save(path, ToJson());
}
