// The original Stable Diffusion (LDM) single-file checkpoint: its key layout mapped from diffusers', and the conversions both ways.
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.UNet;
using DreamBooth.Models.Vae;

namespace DreamBooth.Models.Formats;

/// <summary>
/// One file holds the three models under the prefixes of the LDM code that SD 1.x apps load: "model.diffusion_model."
/// (the UNet), "first_stage_model." (the VAE) and "cond_stage_model.transformer." (the CLIP text model, whose keys are
/// transformers' own). The renames, written from the two layouts' module definitions (docs/single-file.md has them as tables):
///
/// UNet, with L = layers_per_block (2 in SD 1.x); down block i, layer j; up blocks have L + 1 layers:
///   conv_in                              input_blocks.0.0
///   time_embedding.linear_1 / linear_2   time_embed.0 / time_embed.2
///   down_blocks.i.resnets.j              input_blocks.(1 + i(L+1) + j).0        (resnet names below)
///   down_blocks.i.attentions.j           input_blocks.(1 + i(L+1) + j).1        (names unchanged inside)
///   down_blocks.i.downsamplers.0.conv    input_blocks.((i+1)(L+1)).0.op
///   mid_block.resnets.0 / attentions.0 / resnets.1   middle_block.0 / .1 / .2
///   up_blocks.i.resnets.j                output_blocks.(i(L+1) + j).0
///   up_blocks.i.attentions.j             output_blocks.(i(L+1) + j).1
///   up_blocks.i.upsamplers.0.conv        output_blocks.(i(L+1) + L).1.conv, or .2.conv when the block has attention
///   conv_norm_out / conv_out             out.0 / out.2
///   in a resnet: norm1 in_layers.0, conv1 in_layers.2, time_emb_proj emb_layers.1, norm2 out_layers.0, conv2 out_layers.3,
///   conv_shortcut skip_connection
/// VAE, with N blocks; the decoder's up blocks are numbered from the bottom in LDM (up.(N-1-i)):
///   {en,de}coder.down_blocks.i / up_blocks.i .resnets.j    down.i / up.(N-1-i) .block.j   (conv_shortcut: nin_shortcut)
///   encoder.down_blocks.i.downsamplers.0.conv               encoder.down.i.downsample.conv
///   decoder.up_blocks.i.upsamplers.0.conv                   decoder.up.(N-1-i).upsample.conv
///   *.mid_block.resnets.0 / resnets.1                       *.mid.block_1 / mid.block_2
///   *.mid_block.attentions.0.group_norm, to_q, to_k, to_v, to_out.0   *.mid.attn_1.norm, q, k, v, proj_out
///     (the four projection weights are 1×1 convolutions in LDM: [C, C, 1, 1] for diffusers' [C, C], the same bytes)
///   *.conv_norm_out                                         *.norm_out
/// Every other name (conv_in, conv_out, quant_conv, post_quant_conv) is the same in both.
/// </summary>
public static class SingleFile
{
    public const string UNetPrefix = "model.diffusion_model.", VaePrefix = "first_stage_model.", TextEncoderPrefix = "cond_stage_model.transformer.";

    /// <summary>Entries of LDM files that are not weights of the three models: anything outside their prefixes (the
    /// training schedule's buffers such as "alphas_cumprod"), the EMA copy ("model_ema."), and CLIP's position ids.
    /// They are skipped when a single file is read and never written.</summary>
    public static bool IsKnownExtra(string key) =>
        key.StartsWith("model_ema.") || key == TextEncoderPrefix + "text_model.embeddings.position_ids"
        || !(key.StartsWith(UNetPrefix) || key.StartsWith(VaePrefix) || key.StartsWith(TextEncoderPrefix));

    static readonly Dictionary<string, string> ResnetNames = new()
    {
        ["norm1"] = "in_layers.0", ["conv1"] = "in_layers.2", ["time_emb_proj"] = "emb_layers.1", ["norm2"] = "out_layers.0",
        ["conv2"] = "out_layers.3", ["conv_shortcut"] = "skip_connection",
    };

    static readonly Dictionary<string, string> VaeAttentionNames = new()
    {
        ["group_norm"] = "norm", ["to_q"] = "q", ["to_k"] = "k", ["to_v"] = "v", ["to_out"] = "proj_out",
    };

    /// <summary>The single-file name of a diffusers UNet key; a name with no LDM counterpart (Imagen's pooled text
    /// embedding, class embeddings of other pipelines) is an error.</summary>
    public static string UNetKey(string key, UNet2DConditionConfig c)
    {
        var p = key.Split('.');
        int l = c.LayersPerBlock;
        string Rest(int from) => string.Join('.', p[from..]);
        string Resnet(int from) => (ResnetNames.TryGetValue(p[from], out var n) ? n : p[from]) + (p.Length > from + 1 ? "." + Rest(from + 1) : "");
        string mapped = p switch
        {
            ["conv_in", ..] => "input_blocks.0.0." + Rest(1),
            ["time_embedding", "linear_1", ..] => "time_embed.0." + Rest(2),
            ["time_embedding", "linear_2", ..] => "time_embed.2." + Rest(2),
            ["conv_norm_out", ..] => "out.0." + Rest(1),
            ["conv_out", ..] => "out.2." + Rest(1),
            ["down_blocks", var i, "resnets", var j, ..] => $"input_blocks.{1 + int.Parse(i) * (l + 1) + int.Parse(j)}.0." + Resnet(4),
            ["down_blocks", var i, "attentions", var j, ..] => $"input_blocks.{1 + int.Parse(i) * (l + 1) + int.Parse(j)}.1." + Rest(4),
            ["down_blocks", var i, "downsamplers", "0", "conv", ..] => $"input_blocks.{(int.Parse(i) + 1) * (l + 1)}.0.op." + Rest(5),
            ["mid_block", "resnets", var j, ..] => $"middle_block.{2 * int.Parse(j)}." + Resnet(3),
            ["mid_block", "attentions", "0", ..] => "middle_block.1." + Rest(3),
            ["up_blocks", var i, "resnets", var j, ..] => $"output_blocks.{int.Parse(i) * (l + 1) + int.Parse(j)}.0." + Resnet(4),
            ["up_blocks", var i, "attentions", var j, ..] => $"output_blocks.{int.Parse(i) * (l + 1) + int.Parse(j)}.1." + Rest(4),
            ["up_blocks", var i, "upsamplers", "0", "conv", ..] =>
                $"output_blocks.{int.Parse(i) * (l + 1) + l}.{(c.UpBlockTypes[int.Parse(i)].StartsWith("CrossAttn") ? 2 : 1)}.conv." + Rest(5),
            _ => throw new InvalidDataException($"unet '{key}' has no name in the single-file (LDM) layout of SD 1.x"),
        };
        return UNetPrefix + mapped;
    }

    /// <summary>The single-file name of a diffusers VAE key.</summary>
    public static string VaeKey(string key, AutoencoderKLConfig c)
    {
        var p = key.Split('.');
        int n = c.BlockOutChannels.Length;
        string Rest(int from) => string.Join('.', p[from..]);
        string Resnet(int from) => (p[from] == "conv_shortcut" ? "nin_shortcut" : p[from]) + "." + Rest(from + 1);
        string mapped = p switch
        {
            [var part, "down_blocks", var i, "resnets", var j, ..] => $"{part}.down.{i}.block.{j}." + Resnet(5),
            [var part, "down_blocks", var i, "downsamplers", "0", "conv", ..] => $"{part}.down.{i}.downsample.conv." + Rest(6),
            [var part, "up_blocks", var i, "resnets", var j, ..] => $"{part}.up.{n - 1 - int.Parse(i)}.block.{j}." + Resnet(5),
            [var part, "up_blocks", var i, "upsamplers", "0", "conv", ..] => $"{part}.up.{n - 1 - int.Parse(i)}.upsample.conv." + Rest(6),
            [var part, "mid_block", "resnets", var j, ..] => $"{part}.mid.block_{int.Parse(j) + 1}." + Resnet(4),
            [var part, "mid_block", "attentions", "0", "to_out", "0", ..] => $"{part}.mid.attn_1.proj_out." + Rest(6),
            [var part, "mid_block", "attentions", "0", var name, ..] when VaeAttentionNames.ContainsKey(name) =>
                $"{part}.mid.attn_1.{VaeAttentionNames[name]}." + Rest(5),
            [var part, "conv_norm_out", ..] => $"{part}.norm_out." + Rest(2),
            _ => key,
        };
        return VaePrefix + mapped;
    }

    public static string TextEncoderKey(string key) => TextEncoderPrefix + key;

    /// <summary>Whether a VAE weight is one of the attention projections, stored [C, C] in diffusers and [C, C, 1, 1] in LDM.</summary>
    public static bool IsVaeAttentionProjection(string diffusersKey) =>
        diffusersKey.Contains(".mid_block.attentions.0.") && diffusersKey.EndsWith(".weight") && !diffusersKey.Contains("group_norm");

    /// <summary>Each component's diffusers keys, in module order, with their single-file names: the whole mapping of a model.</summary>
    public static IReadOnlyList<(string Component, string Diffusers, string Single)> Mapping(UNet2DConditionConfig unet, AutoencoderKLConfig? vae, ClipTextConfig text)
    {
        var rows = new List<(string, string, string)>();
        rows.AddRange(new UNet2DConditionModel(unet).NamedParameters().Select(n => ("unet", n.Name, UNetKey(n.Name, unet))));
        if (vae is not null) rows.AddRange(new AutoencoderKL(vae).NamedParameters().Select(n => ("vae", n.Name, VaeKey(n.Name, vae))));
        rows.AddRange(new ClipTextModel(text).NamedParameters().Select(n => ("text_encoder", n.Name, TextEncoderKey(n.Name))));
        var clash = rows.GroupBy(r => r.Item3).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null) throw new InvalidDataException($"two weights map to the single-file name '{clash.Key}': {string.Join(", ", clash.Select(r => r.Item2))}");
        return rows;
    }

    /// <summary>The mapping of a diffusers folder's models, built from its configs (unet, text_encoder and, when there
    /// is one, vae). A model with no SD 1.x single-file layout is an error here, before any weight is read.</summary>
    public static IReadOnlyList<(string Component, string Diffusers, string Single)> Mapping(string pipelineDir)
    {
        string vae = Path.Combine(pipelineDir, "vae", "config.json");
        return Mapping(UNet2DConditionConfig.Load(Path.Combine(pipelineDir, "unet", "config.json")), File.Exists(vae) ? AutoencoderKLConfig.Load(vae) : null,
            ClipTextConfig.Load(Path.Combine(pipelineDir, "text_encoder", "config.json")));
    }

    /// <summary>A diffusers folder's UNet, VAE and text encoder as one single-file checkpoint: each tensor's bytes copied
    /// as they are (dtype kept), under its LDM name. <paramref name="output"/> is replaced only by a complete file.</summary>
    public static int Write(string pipelineDir, string output)
    {
        var mapping = Mapping(pipelineDir);
        var files = mapping.Select(m => m.Component).Distinct().ToDictionary(c => c, c => SafetensorsFile.Open(
            Pipeline.StableDiffusionPipeline.WeightsPath(pipelineDir, c, variant: null)));
        try
        {
            // Each component's tensors by the name its model gives them (pre-0.14 VAE names mapped; CLIP's position ids left out).
            var tensors = files.ToDictionary(f => f.Key, f => f.Value.Tensors
                .Where(t => !(f.Key == "text_encoder" && ClipTextModel.BufferKeys.Contains(t.Name)))
                .ToDictionary(t => f.Key == "vae" ? AutoencoderKL.MapLegacyKey(t.Name) : t.Name));
            var problems = new List<string>();
            foreach (var (component, have) in tensors)
            {
                var expected = mapping.Where(m => m.Component == component).Select(m => m.Diffusers).ToHashSet();
                Report(problems, component, expected.Except(have.Keys).ToList(), have.Keys.Except(expected).ToList());
            }
            if (problems.Count > 0) throw new InvalidDataException($"{pipelineDir}: the weights do not match the configs; " + string.Join("; ", problems));
            var entries = mapping.Select(m =>
            {
                var file = files[m.Component];
                var info = tensors[m.Component][m.Diffusers];
                long[] shape = m.Component == "vae" && IsVaeAttentionProjection(m.Diffusers) && info.Shape.Length == 2 ? [.. info.Shape, 1, 1] : info.Shape;
                return new SafetensorsEntry(m.Single, info.DType, shape, stream => Copy(file, info.Name, info.ByteCount, stream));
            });
            SafetensorsWriter.Write(output, entries, new Dictionary<string, string> { ["format"] = "pt" });
            return mapping.Count;
        }
        finally { foreach (var f in files.Values) f.Dispose(); }
    }

    /// <summary>A single-file checkpoint back into a diffusers folder, with the configs, tokenizer and scheduler of
    /// <paramref name="configDir"/> (a diffusers folder of the same architecture): each tensor's bytes copied under its
    /// diffusers name. Missing or unexpected weights are listed by component before anything is written.</summary>
    public static int Read(string file, string configDir, string outputDir)
    {
        var mapping = Mapping(configDir);
        bool hasVae = mapping.Any(m => m.Component == "vae");
        using var single = SafetensorsFile.Open(file);
        var byName = single.Tensors.ToDictionary(t => t.Name);
        var problems = new List<string>();
        foreach (var component in mapping.Select(m => m.Component).Distinct())
        {
            string prefix = component switch { "unet" => UNetPrefix, "vae" => VaePrefix, _ => TextEncoderPrefix };
            var expected = mapping.Where(m => m.Component == component).Select(m => m.Single).ToHashSet();
            var have = byName.Keys.Where(k => k.StartsWith(prefix) && !IsKnownExtra(k)).ToHashSet();
            Report(problems, component, expected.Except(have).ToList(), have.Except(expected).ToList());
        }
        if (!hasVae && byName.Keys.Any(k => k.StartsWith(VaePrefix)))
            problems.Add($"vae: {configDir} has no vae, but the file holds VAE weights");
        if (problems.Count > 0)
        {
            int outside = byName.Keys.Count(k => IsKnownExtra(k) && !k.StartsWith("model_ema."));
            throw new InvalidDataException($"{file}: not a single-file checkpoint of {configDir}'s models; " + string.Join("; ", problems) +
                                           (outside > 0 ? $" ({outside} entries lie outside the model prefixes, for example '{byName.Keys.First(IsKnownExtra)}')" : ""));
        }
        CopyConfigs(configDir, outputDir);
        foreach (var component in mapping.Select(m => m.Component).Distinct())
        {
            var entries = mapping.Where(m => m.Component == component).Select(m =>
            {
                var info = byName[m.Single];
                long[] shape = component == "vae" && IsVaeAttentionProjection(m.Diffusers) && info.Shape.Length == 4 ? info.Shape[..2] : info.Shape;
                return new SafetensorsEntry(m.Diffusers, info.DType, shape, stream => Copy(single, info.Name, info.ByteCount, stream));
            });
            SafetensorsWriter.Write(Pipeline.StableDiffusionPipeline.WeightsPath(outputDir, component, variant: null), entries);
        }
        return mapping.Count;
    }

    /// <summary>What a pipeline is besides its weights: model_index.json and the non-weight files of the components it
    /// names (configs, tokenizer, scheduler). A trained output folder's checkpoints, logs and samples are left behind.</summary>
    static void CopyConfigs(string from, string to)
    {
        var index = ModelIndex.Load(Path.Combine(from, "model_index.json"));
        var files = index.Components.Select(c => Path.Combine(from, c.Name)).Where(Directory.Exists)
            .SelectMany(Directory.EnumerateFiles).Where(f => !f.EndsWith(".safetensors") && !f.EndsWith(".bin") && !Path.GetFileName(f).StartsWith('.'))
            .Prepend(Path.Combine(from, "model_index.json"));
        foreach (string source in files)
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, source));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            AtomicFile.Write(target, temp => File.Copy(source, temp));
        }
    }

    static void Report(List<string> problems, string component, List<string> missing, List<string> unexpected)
    {
        string Few(List<string> names) => string.Join(", ", names.Order().Take(5)) + (names.Count > 5 ? $" and {names.Count - 5} more" : "");
        if (missing.Count > 0) problems.Add($"{component}: {missing.Count} missing ({Few(missing)})");
        if (unexpected.Count > 0) problems.Add($"{component}: {unexpected.Count} unexpected ({Few(unexpected)})");
    }

    /// <summary>One tensor's bytes from a file to the writer; one tensor at a time is held in memory.</summary>
    static void Copy(SafetensorsFile file, string name, long bytes, Stream destination)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(checked((int)bytes));
        file.ReadBytes(name, buffer);
        destination.Write(buffer);
    }
}
