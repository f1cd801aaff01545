// `inspect`: what a model folder or a .safetensors file holds, its parameter counts, and whether weights fit the configs.
using System.Globalization;
using DreamBooth.Autograd;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Tokenizer;
using DreamBooth.Models.UNet;
using DreamBooth.Models.Vae;

namespace DreamBooth.Models.Pipeline;

/// <summary>The report's lines, and the problems found (empty when everything validates).</summary>
public sealed record InspectReport(IReadOnlyList<string> Lines, IReadOnlyList<string> Problems);

public static class Inspector
{
    /// <summary>Inspects a diffusers pipeline folder, one component folder (with a config.json), or a .safetensors file.
    /// Models are built from their configs without allocating weights, so the real SD 1.5 configs inspect in a blink;
    /// weight files are checked from their headers (every key and shape against the model the config builds).</summary>
    public static InspectReport Inspect(string path)
    {
        var lines = new List<string>();
        var problems = new List<string>();
        if (File.Exists(path)) InspectFile(path, lines);
        else if (File.Exists(Path.Combine(path, "model_index.json"))) InspectPipeline(path, lines, problems);
        else if (File.Exists(Path.Combine(path, "config.json")) || File.Exists(Path.Combine(path, "scheduler_config.json")))
            InspectComponent(path, Path.GetFileName(Path.TrimEndingDirectorySeparator(path)), lines, problems);
        else if (!Directory.Exists(path))
            throw new FileNotFoundException($"{path}: no such file or folder");
        else
            throw new FileNotFoundException($"{path}: not a .safetensors file, nor a folder with model_index.json or config.json");
        return new InspectReport(lines, problems);
    }

    static void InspectFile(string path, List<string> lines)
    {
        using var file = SafetensorsFile.Open(path);   // opening validates the header against the file
        long parameters = file.Tensors.Sum(t => t.ElementCount);
        var dtypes = file.Tensors.GroupBy(t => t.DType).Select(g => $"{g.Key} × {g.Count()}");
        lines.Add($"{path}: {Wording.Count(file.Tensors.Count, "tensor")}, {Count(parameters)} value{(parameters == 1 ? "" : "s")} ({string.Join(", ", dtypes)}); valid");
        foreach (var (key, value) in file.Metadata) lines.Add($"  metadata {key} = {value}");
        foreach (var (component, prefix) in new[] { ("unet", SingleFile.UNetPrefix), ("vae", SingleFile.VaePrefix), ("text encoder", SingleFile.TextEncoderPrefix) })
            if (file.Tensors.Where(t => t.Name.StartsWith(prefix) && !SingleFile.IsKnownExtra(t.Name)).ToList() is { Count: > 0 } part)
                lines.Add($"  single-file (LDM) layout: {component} {Wording.Count(part.Count, "tensor")}, {Count(part.Sum(t => t.ElementCount))} parameters");
        foreach (var t in file.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
            lines.Add($"  {t.Name,-90} {t.DType,-5} [{string.Join(", ", t.Shape)}]");
    }

    static void InspectPipeline(string dir, List<string> lines, List<string> problems)
    {
        var index = ModelIndex.Load(Path.Combine(dir, "model_index.json"));
        lines.Add($"{dir}: {index.ClassName}" + (index.DiffusersVersion is { } v ? $" (diffusers {v})" : ""));
        long total = 0;
        var unreadable = new List<string>();
        foreach (var c in index.Components.Where(c => c.ClassName != null))
        {
            try { total += InspectComponent(Path.Combine(dir, c.Name), c.Name, lines, problems); }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException)
            {   // one broken component does not hide the others
                lines.Add($"{c.Name,-13} (unreadable, see below)");
                problems.Add(e.Message);
                unreadable.Add(c.Name);
            }
        }
        lines.Add($"total {Count(total)} parameters" + (unreadable.Count == 0 ? "" : $" (partial: without {string.Join(" and ", unreadable)}, unreadable)"));
    }

    /// <summary>One component folder: its config summary and parameter count, and each weights file checked.</summary>
    static long InspectComponent(string dir, string name, List<string> lines, List<string> problems)
    {
        string config = Path.Combine(dir, "config.json");
        switch (name is "text_encoder" or "unet" or "vae" or "tokenizer" or "scheduler" ? name : KindOf(config) ?? name)
        {
            case "text_encoder":
            {
                var c = ClipTextConfig.Load(config);
                var model = new ClipTextModel(c);
                lines.Add($"{name,-13} CLIP text encoder {Count(model.ParameterCount()),15} parameters   " +
                          $"hidden {c.HiddenSize}, {c.NumHiddenLayers} layers, {c.NumAttentionHeads} heads, vocab {c.VocabSize}, {c.HiddenAct}");
                CheckWeights(dir, model, null, ClipTextModel.BufferKeys, lines, problems);
                return model.ParameterCount();
            }
            case "unet":
            {
                var c = UNet2DConditionConfig.Load(config);
                var model = new UNet2DConditionModel(c);
                lines.Add($"{name,-13} UNet              {Count(model.ParameterCount()),15} parameters   " +
                          $"channels [{string.Join(", ", c.BlockOutChannels)}], in {c.InChannels}, out {c.OutChannels}, " +
                          $"cross-attention {c.CrossAttentionDim}, sample {c.SampleSize?.ToString(CultureInfo.InvariantCulture) ?? "-"}");
                CheckWeights(dir, model, null, null, lines, problems);
                return model.ParameterCount();
            }
            case "vae":
            {
                var c = AutoencoderKLConfig.Load(config);
                var model = new AutoencoderKL(c);
                lines.Add($"{name,-13} VAE               {Count(model.ParameterCount()),15} parameters   " +
                          $"channels [{string.Join(", ", c.BlockOutChannels)}], latent {c.LatentChannels}, scaling {c.ScalingFactor}");
                CheckWeights(dir, model, AutoencoderKL.MapLegacyKey, null, lines, problems);
                return model.ParameterCount();
            }
            case "tokenizer":
            {
                var t = ClipTokenizer.Load(dir);
                lines.Add($"{name,-13} CLIP tokenizer    BOS {t.BosId}, EOS {t.EosId}, pad {t.PadId}, max length {t.MaxLength}");
                return 0;
            }
            case "scheduler":
            {
                var s = SchedulerConfig.Load(Path.Combine(dir, "scheduler_config.json"));
                lines.Add($"{name,-13} {s.ClassName}   {s.BetaSchedule} {s.BetaStart}…{s.BetaEnd} over {s.NumTrainTimesteps} steps, " +
                          $"predicts {s.PredictionType}");
                return 0;
            }
            default:
                lines.Add($"{name,-13} (not inspected: not a model this project builds)");
                return 0;
        }
    }

    /// <summary>Every *.safetensors in the folder (the plain weights and variants) against the model's keys and shapes.</summary>
    static void CheckWeights(string dir, Module model, Func<string, string>? mapKey, IReadOnlySet<string>? ignore,
        List<string> lines, List<string> problems)
    {
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir, "*.safetensors").Order(StringComparer.Ordinal).ToArray() : [];
        if (files.Length == 0) { lines.Add($"{"",13} weights: none (config only)"); return; }
        var expected = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Shape);
        foreach (string path in files)
        {
            using var file = SafetensorsFile.Open(path);
            var found = new List<string>();
            int before = problems.Count;
            foreach (var t in file.Tensors.Where(t => ignore?.Contains(t.Name) != true))
            {
                string key = mapKey?.Invoke(t.Name) ?? t.Name;
                if (!expected.TryGetValue(key, out var shape)) problems.Add($"{path}: tensor '{t.Name}' is not a parameter of the model");
                else if (t.ElementCount != Tensor.ShapeLength(shape))
                    problems.Add($"{path}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}], the model's is [{string.Join(", ", shape)}]");
                else found.Add(key);
            }
            var missing = expected.Keys.Except(found).ToList();
            if (missing.Count > 0) problems.Add($"{path}: {missing.Count} parameter(s) missing, e.g. {string.Join(", ", missing.Take(3))}");
            var dtypes = string.Join(", ", file.Tensors.Select(t => t.DType).Distinct());
            lines.Add($"{"",13} weights: {Path.GetFileName(path)}: {Wording.Count(file.Tensors.Count, "tensor")} ({dtypes}), " +
                      (problems.Count == before ? "match the config" : $"{problems.Count - before} problem(s)"));
        }
    }

    /// <summary>A lone component folder under another name (a copy, a checkpoint's renamed unet/): its kind from the
    /// config's _class_name; the config must be a JSON object.</summary>
    static string? KindOf(string config)
    {
        if (!File.Exists(config)) return null;
        var r = ConfigReader.Open(config);
        return r.NullableString("_class_name", null) switch
        {
            UNet2DConditionConfig.ClassName => "unet",
            AutoencoderKLConfig.ClassName => "vae",
            _ => r.NullableString("model_type", null) == ClipTextConfig.ModelType ? "text_encoder" : null,
        };
    }

    static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
}
