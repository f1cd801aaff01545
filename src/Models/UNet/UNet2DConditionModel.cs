// diffusers' UNet2DConditionModel for the SD 1.x/2.x (and x4 upscaler) configs: built from unet/config.json, keys = state-dict keys.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>
/// ε-prediction UNet: conv_in → down blocks (pushing skips) → mid block → up blocks (popping them) → GroupNorm, SiLU,
/// conv_out. Every resnet receives the time embedding linear_2(silu(linear_1(sinusoid(t)))) plus, when the config has
/// num_class_embeds, class_embedding(class label): a table row, or with class_embed_type "timestep" (DeepFloyd IF's
/// stage II) an MLP of the label's sinusoid like the time's, so that near labels share what they learn; and with
/// addition_embed_type "text", add_embedding(encoder_hidden_states).
/// Transformers attend to encoder_hidden_states.
/// Without the tape, every layer frees its temporaries as it finishes and the forward returns holding only its output.
/// </summary>
public sealed class UNet2DConditionModel : Module
{
    public UNet2DConditionConfig Config { get; }
    public Conv2d ConvIn { get; }
    public TimestepEmbedding TimeEmbedding { get; }
    public Module? ClassEmbedding { get; }   // Embedding (a table), or TimestepEmbedding (class_embed_type "timestep")
    public TextTimeEmbedding? AddEmbedding { get; }
    public ModuleList<UNetDownBlock> DownBlocks { get; }
    public ModuleList<UNetUpBlock> UpBlocks { get; }
    public UNetMidBlock2DCrossAttn MidBlock { get; }
    public GroupNorm ConvNormOut { get; }
    public Conv2d ConvOut { get; }

    public UNet2DConditionModel(UNet2DConditionConfig config)
    {
        Config = config;
        int[] channels = config.BlockOutChannels, heads = config.HeadsPerBlock;
        int blocks = channels.Length;
        if (blocks == 0 || config.DownBlockTypes.Length != blocks || config.UpBlockTypes.Length != blocks ||
            heads.Length != blocks || config.OnlyCrossAttention.Length != blocks)
            throw new ArgumentException($"unet config: {blocks} block_out_channels, {config.DownBlockTypes.Length} down and " +
                                        $"{config.UpBlockTypes.Length} up block types, {heads.Length} head counts and " +
                                        $"{config.OnlyCrossAttention.Length} only_cross_attention flags must all agree");
        if (config.ActFn != "silu" || config.DualCrossAttention || config.ClassEmbedType is not (null or "timestep") ||
            config.ResnetTimeScaleShift != "default" || config.TimeEmbeddingType != "positional")
            throw new ArgumentException($"unet config: act_fn \"{config.ActFn}\", dual_cross_attention {config.DualCrossAttention}, " +
                                        $"class_embed_type \"{config.ClassEmbedType}\", resnet_time_scale_shift \"{config.ResnetTimeScaleShift}\", " +
                                        $"time_embedding_type \"{config.TimeEmbeddingType}\": only silu, false, null or timestep, default and positional are supported");
        int timeEmbedDim = 4 * channels[0];
        var s = new UNetBlockSettings(timeEmbedDim, config.NormNumGroups, (float)config.NormEps, config.CrossAttentionDim,
            config.UseLinearProjection, config.TransformerLayersPerBlock);

        ConvIn = AddModule("conv_in", new Conv2d(config.InChannels, channels[0], 3, padding: 1));
        TimeEmbedding = AddModule("time_embedding", new TimestepEmbedding(channels[0], timeEmbedDim));
        if (config.ClassEmbedType is "timestep") ClassEmbedding = AddModule("class_embedding", new TimestepEmbedding(channels[0], timeEmbedDim));
        else if (config.NumClassEmbeds is { } classes) ClassEmbedding = AddModule("class_embedding", new Embedding(classes, timeEmbedDim));
        if (config.AdditionEmbedType is "text")
            AddEmbedding = AddModule("add_embedding", new TextTimeEmbedding(config.CrossAttentionDim, timeEmbedDim, config.AdditionEmbedTypeNumHeads));
        else if (config.AdditionEmbedType is not null)
            throw new ArgumentException($"unet config: addition_embed_type \"{config.AdditionEmbedType}\" is not supported (only null or \"text\")");
        DownBlocks = AddModule("down_blocks", new ModuleList<UNetDownBlock>());
        UpBlocks = AddModule("up_blocks", new ModuleList<UNetUpBlock>());   // registered before mid_block, as in diffusers

        int output = channels[0];
        for (int i = 0; i < blocks; i++)
        {
            int input = output;
            output = channels[i];
            bool last = i == blocks - 1;
            DownBlocks.Add(config.DownBlockTypes[i] switch
            {
                "CrossAttnDownBlock2D" => new CrossAttnDownBlock2D(input, output, config.LayersPerBlock, heads[i],
                    config.OnlyCrossAttention[i], !last, config.DownsamplePadding, s),
                "DownBlock2D" => new DownBlock2D(input, output, config.LayersPerBlock, !last, config.DownsamplePadding, s),
                var t => throw new ArgumentException($"unet config: down block type \"{t}\" is not supported"),
            });
        }

        MidBlock = AddModule("mid_block", new UNetMidBlock2DCrossAttn(channels[^1], heads[^1], (float)config.MidBlockScaleFactor, s));

        output = channels[^1];
        for (int i = 0; i < blocks; i++)
        {
            int down = blocks - 1 - i;                                  // the down block this up block mirrors
            int prevOutput = output;
            output = channels[down];
            int input = channels[Math.Max(down - 1, 0)];
            bool last = i == blocks - 1;
            UpBlocks.Add(config.UpBlockTypes[i] switch
            {
                "CrossAttnUpBlock2D" => new CrossAttnUpBlock2D(input, output, prevOutput, config.LayersPerBlock + 1, heads[down],
                    config.OnlyCrossAttention[down], !last, s),
                "UpBlock2D" => new UpBlock2D(input, output, prevOutput, config.LayersPerBlock + 1, !last, s),
                var t => throw new ArgumentException($"unet config: up block type \"{t}\" is not supported"),
            });
        }

        ConvNormOut = AddModule("conv_norm_out", new GroupNorm(config.NormNumGroups, channels[0], (float)config.NormEps));
        ConvOut = AddModule("conv_out", new Conv2d(channels[0], config.OutChannels, 3, padding: 1));
    }

    /// <summary>The noise prediction for <paramref name="sample"/> at <paramref name="timesteps"/>.</summary>
    /// <param name="classLabels">one label per sample in [0, num_class_embeds), required exactly when the config has num_class_embeds</param>
    public Tensor Forward(Tensor sample,   // (N, C_in, H, W)
        float[] timesteps,                 // (N)
        Tensor encoderHiddenStates,        // (N, L, cross_attention_dim)
        int[]? classLabels = null)         // (N)
    {                                      // → (N, C_out, H, W)
        Validate(sample, timesteps, encoderHiddenStates, classLabels);
        return RunLayer(a => Predict(a[0], timesteps, a[1], classLabels), sample, encoderHiddenStates);
    }

    Tensor Predict(Tensor sample, float[] timesteps, Tensor encoderHiddenStates, int[]? classLabels)
    {
        var backend = sample.Backend;
        if (Config.CenterInputSample) sample = F.Sub(F.Scale(sample, 2f), Tensor.FromArray(backend, [1f], 1));

        var sinusoid = F.TimestepEmbedding(backend, timesteps, Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift);
        var temb = TimeEmbedding.Forward(sinusoid);
        if (ClassEmbedding is Embedding table)
            temb = F.Add(temb, table.Forward(Tensor.FromInts(backend, classLabels!, classLabels!.Length)));
        else if (ClassEmbedding is TimestepEmbedding mlp)
            temb = F.Add(temb, mlp.Forward(F.TimestepEmbedding(backend, Array.ConvertAll(classLabels!, l => (float)l), Config.BlockOutChannels[0],
                Config.FlipSinToCos, Config.FreqShift)));
        if (AddEmbedding is { } text) temb = F.Add(temb, text.Forward(encoderHiddenStates));

        var h = RunLayer(a => ConvIn.Forward(a[0]), sample);
        var skips = new List<Tensor> { h };
        foreach (var block in DownBlocks) h = block.Forward(h, temb, encoderHiddenStates, skips);
        h = MidBlock.Forward(h, temb, encoderHiddenStates);
        foreach (var block in UpBlocks) h = block.Forward(h, temb, encoderHiddenStates, skips);
        return RunLayer(a => ConvOut.Forward(ConvNormOut.Forward(a[0], silu: true)), h);
    }

    void Validate(Tensor sample, float[] timesteps, Tensor context, int[]? classLabels)
    {
        var c = Config;
        int factor = c.Downsampling;
        if (sample.Rank != 4 || sample.Dim(1) != c.InChannels || sample.Dim(2) % factor != 0 || sample.Dim(3) % factor != 0)
            throw new ArgumentException($"unet: sample {sample} is not (N, {c.InChannels}, H, W) with H and W multiples of {factor}");
        int n = sample.Dim(0);
        if (timesteps.Length != n)
            throw new ArgumentException($"unet: {timesteps.Length} timesteps for a batch of {n} samples");
        if (context.Rank != 3 || context.Dim(0) != n || context.Dim(2) != c.CrossAttentionDim)
            throw new ArgumentException($"unet: encoder_hidden_states {context} is not ({n}, L, {c.CrossAttentionDim})");
        if (ClassEmbedding is null && classLabels is not null)
            throw new ArgumentException("unet: class labels were given, but the config has no num_class_embeds or class_embed_type");
        if (ClassEmbedding is null) return;
        if (classLabels is null || classLabels.Length != n)
            throw new ArgumentException($"unet: the config embeds class labels, so {n} are needed, not {classLabels?.Length ?? 0}");
        int limit = ClassEmbedding is Embedding table ? table.Count : int.MaxValue;
        foreach (int label in classLabels)
            if (label < 0 || label >= limit)
                throw new ArgumentException($"unet: class label {label} is outside [0, {(limit == int.MaxValue ? "∞" : limit)})");
    }
}
