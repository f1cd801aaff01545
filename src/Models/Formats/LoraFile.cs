// LoRA weights on disk: diffusers' pytorch_lora_weights.safetensors, peft's keys (our checkpoints), kohya's lora_unet_ names.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;
using DreamBooth.Models.Pipeline;

namespace DreamBooth.Models.Formats;

/// <summary>The three key layouts of a LoRA file, for one adapter at PATH of component C (unet or text_encoder):
/// <code>
///   peft       C.PATH.lora_A.weight            C.PATH.lora_B.weight            (α in the metadata; our checkpoints)
///   diffusers  unet.PATH.lora.down.weight      unet.PATH.lora.up.weight        (train_dreambooth_lora.py's file; no α,
///              text_encoder.PATH.lora_linear_layer.down.weight / .up.weight   so loaders take α = r: B is written × α/r)
///   kohya      lora_unet_P.lora_down.weight    lora_unet_P.lora_up.weight      lora_unet_P.alpha (a scalar)
///              lora_te_P…  where P is PATH with every "." replaced by "_" (sd-scripts' networks/lora.py, SD 1.x)
/// </code>
/// lora_A / lora.down / lora_down is A (r, In); lora_B / lora.up / lora_up is B (Out, r).</summary>
public enum LoraLayout { Peft, Diffusers, Kohya }

/// <summary>A LoRA run's adapters: the UNet's, and the text encoder's when it trains, under diffusers' component prefixes,
/// so that this module's parameter names are the peft layout's keys.</summary>
public sealed class LoraWeights : Module
{
    public LoraNetwork Unet { get; }
    public LoraNetwork? TextEncoder { get; }

    public LoraWeights(LoraNetwork unet, LoraNetwork? textEncoder)
    {
        Unet = AddModule("unet", unet);
        if (textEncoder is not null) TextEncoder = AddModule("text_encoder", textEncoder);
    }

    /// <summary>New adapters (B = 0) of rank r and scale α / r on diffusers' targets of the pipeline's UNet, and of its text
    /// encoder when <paramref name="textEncoder"/>.</summary>
    public static LoraWeights Attach(StableDiffusionPipeline p, int rank, double alpha, bool textEncoder, double dropout = 0) =>
        new(LoraNetwork.Attach(p.Unet, LoraNetwork.UnetTargets, rank, alpha, dropout: dropout),
            textEncoder ? LoraNetwork.Attach(p.TextEncoder, LoraNetwork.TextEncoderTargets, rank, alpha, dropout: dropout) : null);

    public IEnumerable<(string Component, LoraNetwork Network)> Networks()
    {
        yield return ("unet", Unet);
        if (TextEncoder is not null) yield return ("text_encoder", TextEncoder);
    }

    public void Detach() { foreach (var (_, n) in Networks()) n.Detach(); }

    /// <summary>Training with lora_dropout: one micro-batch's draws (the UNet's adapters first, then the text encoder's);
    /// null outside training.</summary>
    public void SetDropoutStream((ulong Seed, ulong Offset)? stream)
    {
        int adapters = Unet.Adapters.Count + (TextEncoder?.Adapters.Count ?? 0);
        if ((ulong)adapters * LoraAdapter.DropoutCounters > StepNoise.LoraDropoutCounters)
            throw new InvalidOperationException($"lora dropout: {adapters} adapters need more draws than a step's stream holds after its other draws");
        Unet.SetDropoutStream(stream);
        TextEncoder?.SetDropoutStream(stream, first: Unet.Adapters.Count);
    }

    /// <summary>Folds the adapters into the pipeline's weights (merge-lora) and detaches them.</summary>
    public void Merge() { foreach (var (_, n) in Networks()) n.Merge(); }
}

/// <summary>Adapters loaded from a file and attached to a pipeline; disposing detaches them and frees their store.</summary>
public sealed class LoadedLora(LoraWeights weights, ParameterStore store, LoraLayout layout) : IDisposable
{
    public LoraWeights Weights { get; } = weights;
    public LoraLayout Layout { get; } = layout;

    public void Dispose()
    {
        Weights.Detach();
        store.Dispose();
    }
}

public static class LoraFile
{
    /// <summary>diffusers' file name (LORA_WEIGHT_NAME_SAFE).</summary>
    public const string DiffusersName = "pytorch_lora_weights.safetensors";

    /// <summary>A LoRA run's checkpoint keeps its adapters as CheckpointFolder/AdapterName (peft's file name), with
    /// config.json (<see cref="LoraSettings"/>) beside them.</summary>
    public const string CheckpointFolder = "lora", AdapterName = "adapter_model.safetensors";

    /// <summary>Writes the adapters in <paramref name="layout"/> as F32 (through a temporary file). The peft layout keeps
    /// the raw A and B and puts r and α in the metadata, so a checkpoint resumes bit-exactly; the diffusers layout has no
    /// place for α, so B is written × α/r and α = r holds; kohya writes α itself, as a scalar per adapter.</summary>
    public static void Save(string path, LoraWeights weights, LoraLayout layout)
    {
        var entries = new List<SafetensorsEntry>();
        foreach (var (component, network) in weights.Networks())
            foreach (var (modulePath, _, adapter) in network.Adapters)
            {
                float ratio = adapter.Scale;   // α / r (the strength is 1 in training)
                float[] a = adapter.Down.Weight.Value.ToArray(), b = adapter.Up.Weight.Value.ToArray();
                long[] aShape = Shape(adapter.Down.Weight), bShape = Shape(adapter.Up.Weight);
                switch (layout)
                {
                    case LoraLayout.Peft:
                        entries.Add(SafetensorsEntry.FromFloats($"{component}.{modulePath}.lora_A.weight", aShape, a));
                        entries.Add(SafetensorsEntry.FromFloats($"{component}.{modulePath}.lora_B.weight", bShape, b));
                        break;
                    case LoraLayout.Diffusers:
                        string inner = component == "unet" ? "lora" : "lora_linear_layer";
                        entries.Add(SafetensorsEntry.FromFloats($"{component}.{modulePath}.{inner}.down.weight", aShape, a));
                        entries.Add(SafetensorsEntry.FromFloats($"{component}.{modulePath}.{inner}.up.weight", bShape, Array.ConvertAll(b, v => v * ratio)));
                        break;
                    case LoraLayout.Kohya:
                        string name = KohyaName(component, modulePath);
                        entries.Add(SafetensorsEntry.FromFloats($"{name}.lora_down.weight", aShape, a));
                        entries.Add(SafetensorsEntry.FromFloats($"{name}.lora_up.weight", bShape, b));
                        entries.Add(SafetensorsEntry.FromFloats($"{name}.alpha", [], new[] { (float)network.Alpha }));
                        break;
                }
            }
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (layout == LoraLayout.Peft)
        {
            metadata["r"] = weights.Unet.Rank.ToString(CultureInfo.InvariantCulture);
            metadata["lora_alpha"] = weights.Unet.Alpha.ToString("R", CultureInfo.InvariantCulture);
        }
        SafetensorsWriter.Write(path, entries, metadata);
    }

    /// <summary>
    /// Reads a LoRA file in any of the three layouts (found from its keys) and attaches its adapters to the pipeline at
    /// <paramref name="strength"/> × α/r (diffusers' lora_scale, kohya's multiplier). Every adapter must name a linear
    /// layer of the pipeline and have both its matrices; the error lists what does not fit, by component. A folder is
    /// read as the file it holds: pytorch_lora_weights.safetensors, or a checkpoint's lora/ adapters.
    /// </summary>
    public static LoadedLora Load(string path, StableDiffusionPipeline p, double strength = 1)
    {
        path = Resolve(path);
        using var file = SafetensorsFile.Open(path);
        var layout = file.Tensors.Any(t => t.Name.StartsWith("lora_unet_", StringComparison.Ordinal) || t.Name.StartsWith("lora_te_", StringComparison.Ordinal))
            ? LoraLayout.Kohya : file.Tensors.Any(t => t.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal)) ? LoraLayout.Peft : LoraLayout.Diffusers;
        var models = new Dictionary<string, Module> { ["unet"] = p.Unet, ["text_encoder"] = p.TextEncoder };
        var byName = new Dictionary<string, (string Component, string Path)>();   // the layout's adapter name → (component, module path)
        foreach (var (component, model) in models)
            foreach (var (modulePath, module) in model.NamedModules())
                if (module is Linear)
                    byName[layout == LoraLayout.Kohya ? KohyaName(component, modulePath) : $"{component}.{modulePath}"] = (component, modulePath);

        var found = new Dictionary<(string Component, string Path), (string? A, string? B, string? Alpha)>();
        var unknown = new List<string>();
        foreach (var t in file.Tensors)
        {
            if (!Split(t.Name, layout, out string adapter, out char part) || !byName.TryGetValue(adapter, out var target)) { unknown.Add(t.Name); continue; }
            var f = found.GetValueOrDefault(target);
            found[target] = part switch { 'A' => f with { A = t.Name }, 'B' => f with { B = t.Name }, _ => f with { Alpha = t.Name } };
        }
        var incomplete = found.Where(f => f.Value.A is null || f.Value.B is null).Select(f => $"{f.Key.Component}.{f.Key.Path}").ToList();
        if (unknown.Count > 0 || incomplete.Count > 0 || found.Count == 0)
            throw new InvalidDataException($"{path}: not a LoRA of this model ({layout} layout): " + string.Join("; ", new[]
            {
                found.Count == 0 && unknown.Count == 0 ? "no tensors" : null,
                unknown.Count > 0 ? Grouped($"{unknown.Count} tensor(s) name no linear layer of it", unknown) : null,
                incomplete.Count > 0 ? Grouped($"{incomplete.Count} adapter(s) lack their down or up matrix", incomplete) : null,
            }.Where(s => s is not null)));

        double fileAlpha = double.TryParse(file.Metadata.GetValueOrDefault("lora_alpha"), NumberStyles.Float, CultureInfo.InvariantCulture, out double a0) ? a0 : double.NaN;
        LoraNetwork? Network(string component)
        {
            var mine = found.Where(f => f.Key.Component == component).ToList();
            if (mine.Count == 0) return null;
            var ranks = mine.ToDictionary(f => f.Key.Path, f => checked((int)file[f.Value.A!].Shape[0]));
            var network = LoraNetwork.Attach(models[component], mine.Select(f => f.Key.Path).ToList(), ranks.Values.First(), 1, strength, ranks);
            try
            {
                foreach (var (modulePath, _, adapter) in network.Adapters)
                {
                    int r = ranks[modulePath];
                    double alpha = found[(component, modulePath)].Alpha is { } alphaKey ? file.ReadFloats(alphaKey)[0] : double.IsNaN(fileAlpha) ? r : fileAlpha;
                    adapter.Scale = (float)(strength * alpha / r);
                }
                return network;
            }
            catch
            {
                network.Detach();
                throw;
            }
        }
        LoraNetwork? unet = null, textEncoder = null;
        ParameterStore? store = null;
        try   // a file that fails half-way leaves the pipeline as it was: no adapter attached
        {
            unet = Network("unet") ?? throw new InvalidDataException($"{path}: the LoRA has no UNet adapters");
            textEncoder = Network("text_encoder");
            var weights = new LoraWeights(unet, textEncoder);
            weights.RequiresGrad(false);
            store = new ParameterStore(p.Backend, weights);
            // The store's names are the peft layout's keys: each file key maps onto one, the alphas are scales, not weights.
            var storeKey = found.SelectMany(f => new[] { (f.Value.A!, $"{f.Key.Component}.{f.Key.Path}.lora_A.weight"),
                (f.Value.B!, $"{f.Key.Component}.{f.Key.Path}.lora_B.weight") }).ToDictionary(k => k.Item1, k => k.Item2);
            StateDict.Load(store, path, mapKey: key => storeKey[key],
                ignore: found.Values.Where(f => f.Alpha is not null).Select(f => f.Alpha!).ToHashSet());
            return new LoadedLora(weights, store, layout);
        }
        catch
        {
            unet?.Detach();
            textEncoder?.Detach();
            store?.Dispose();
            throw;
        }
    }

    /// <summary>A file, or the LoRA file inside a run's folder or checkpoint.</summary>
    public static string Resolve(string path)
    {
        if (File.Exists(path)) return path;
        foreach (string inside in new[] { DiffusersName, Path.Combine(CheckpointFolder, AdapterName) })
            if (File.Exists(Path.Combine(path, inside))) return Path.Combine(path, inside);
        throw new FileNotFoundException($"{path}: no LoRA file there (a .safetensors file, or a folder with {DiffusersName} or {CheckpointFolder}/{AdapterName})");
    }

    /// <summary>An adapter's name in the layout and which tensor it is: 'A' (down), 'B' (up) or 'α'.</summary>
    static bool Split(string key, LoraLayout layout, out string adapter, out char part)
    {
        (string Suffix, char Part)[] suffixes = layout switch
        {
            LoraLayout.Peft => [(".lora_A.weight", 'A'), (".lora_B.weight", 'B')],
            LoraLayout.Kohya => [(".lora_down.weight", 'A'), (".lora_up.weight", 'B'), (".alpha", 'α')],
            _ => [(".lora.down.weight", 'A'), (".lora.up.weight", 'B'), (".lora_linear_layer.down.weight", 'A'), (".lora_linear_layer.up.weight", 'B')],
        };
        foreach (var (suffix, p) in suffixes)
            if (key.EndsWith(suffix, StringComparison.Ordinal))
            {
                (adapter, part) = (key[..^suffix.Length], p);
                return true;
            }
        (adapter, part) = ("", ' ');
        return false;
    }

    static string KohyaName(string component, string modulePath) =>
        (component == "unet" ? "lora_unet_" : "lora_te_") + modulePath.Replace('.', '_');

    static string Grouped(string what, List<string> keys) =>
        what + ": " + string.Join(", ", keys.GroupBy(k => k.StartsWith("lora_te_", StringComparison.Ordinal) || k.StartsWith("text_encoder.", StringComparison.Ordinal) ? "text_encoder" : "unet")
            .OrderBy(g => g.Key != "unet").Select(g => $"{g.Key} ({g.Count()}): {string.Join(", ", g.Take(3))}{(g.Count() > 3 ? ", …" : "")}"));

    static long[] Shape(Parameter p) => Array.ConvertAll(p.Shape, d => (long)d);
}

/// <summary>A LoRA run's settings, written beside its adapters in checkpoints (lora/config.json, peft's field names).</summary>
public sealed record LoraSettings(int Rank, double Alpha, bool TextEncoder, double Dropout)
{
    /// <summary>A resumed run must train the adapters it checkpointed: rank, α, dropout and targets as written there.</summary>
    public void Expect(string path)
    {
        LoraSettings saved;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            saved = new LoraSettings(json["r"]!.GetValue<int>(), json["lora_alpha"]!.GetValue<double>(), json["text_encoder_target_modules"] is not null,
                json["lora_dropout"]!.GetValue<double>());
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or FileNotFoundException)
        {
            throw new InvalidDataException($"{path}: not the LoRA settings this trainer writes ({e.Message})");
        }
        if (saved != this)
            throw new InvalidDataException($"{path}: the checkpoint's adapters are {saved.Describe()}, this run asks for {Describe()}; resume with the options " +
                                           "it was started with");
    }

    string Describe() => FormattableString.Invariant($"rank {Rank}, alpha {Alpha}, dropout {Dropout}{(TextEncoder ? ", with the text encoder" : "")}");

    public void Save(string path) => File.WriteAllText(path, new JsonObject
    {
        ["r"] = Rank, ["lora_alpha"] = Alpha, ["target_modules"] = new JsonArray([.. LoraNetwork.UnetTargets.Select(t => (JsonNode)t)]),
        ["text_encoder_target_modules"] = TextEncoder ? new JsonArray([.. LoraNetwork.TextEncoderTargets.Select(t => (JsonNode)t)]) : null,
        ["init_lora_weights"] = true, ["lora_dropout"] = Dropout,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
