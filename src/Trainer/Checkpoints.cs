// Training checkpoints: output_dir/checkpoint-STEP written atomically, found again for resume, pruned to a limit.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DreamBooth.Autograd;
using DreamBooth.Models.Formats;

namespace DreamBooth.Trainer;

/// <summary>What a run trains, as a folder inside a checkpoint or the final model: its name (unet, text_encoder, lora), its
/// weights, and how to write it into, and read it back from, that folder.</summary>
public sealed record TrainedComponent(string Name, ParameterStore Store, Action<string> Save, Action<string> Load)
{
    /// <summary>A model in the diffusers layout: config.json and its F32 weights under diffusers' file name.</summary>
    public static TrainedComponent Model(string name, ParameterStore store, Action<string> saveConfig)
    {
        string Weights(string folder) => Models.Pipeline.StableDiffusionPipeline.WeightsPath(folder, variant: null, textEncoder: name == "text_encoder");
        return new(name, store,
            folder => { saveConfig(Path.Combine(folder, "config.json")); StateDict.Save(store, Weights(folder)); },
            folder => StateDict.Load(store, Weights(folder), ignore: Models.Clip.ClipTextModel.BufferKeys));
    }
}

/// <summary>
/// checkpoint-STEP/ holds every trained component (unet/, and text_encoder/ when it trains, in the diffusers layout; or
/// lora/, the adapters in peft's layout; F32, so a resumed run continues from the exact weights), optimizer.safetensors (AdamW's moments, one 1-D tensor per state
/// buffer: F32, or U8 for the codes of --use_8bit_adam; and its step count), and trainer_state.json (the <see cref="TrainingState"/>, the loss scaler, and the LR
/// schedule for reference). It is written into a hidden temporary folder that is renamed into place only when complete;
/// --checkpoints_total_limit removes the oldest only after that.
/// </summary>
public static class Checkpoints
{
    const string Prefix = "checkpoint-";

    /// <summary>The checkpoints of a run folder by step, oldest first.</summary>
    public static IReadOnlyList<(int Step, string Dir)> List(string outputDir) =>
        !Directory.Exists(outputDir) ? [] : Directory.GetDirectories(outputDir, Prefix + "*")
            .Select(d => (Step: int.TryParse(Path.GetFileName(d)[Prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : -1, Dir: d))
            .Where(c => c.Step >= 0).OrderBy(c => c.Step).ToList();

    /// <summary>--resume_from_checkpoint: "latest" (null when the folder has none: the run starts fresh, as in diffusers), or
    /// a checkpoint's name or path, which must exist.</summary>
    public static string? Find(string outputDir, string request)
    {
        if (request == "latest") return List(outputDir) is { Count: > 0 } all ? all[^1].Dir : null;
        string dir = Directory.Exists(request) ? request : Path.Combine(outputDir, Path.GetFileName(Path.TrimEndingDirectorySeparator(request)));
        if (!File.Exists(Path.Combine(dir, "trainer_state.json")))
            throw new DirectoryNotFoundException($"--resume_from_checkpoint {request}: {dir} is not a checkpoint (no trainer_state.json)");
        return dir;
    }

    /// <summary>Writes checkpoint-STEP. A failure (a full disk, a folder made read-only) removes the partial copy and says so;
    /// the checkpoints already written stay as they were.</summary>
    public static void Save(string outputDir, IReadOnlyList<TrainedComponent> components, Optimizer optimizer, GradScaler? scaler,
        TrainingState state, LrSchedule schedule, int? totalLimit)
    {
        string final = Path.Combine(outputDir, Prefix + state.Step.ToString(CultureInfo.InvariantCulture));
        string temp = Hidden(outputDir, Prefix + state.Step, "tmp");
        try
        {
            foreach (var c in components) SaveComponent(temp, c);
            var buffers = optimizer.SaveState();
            SafetensorsWriter.Write(Path.Combine(temp, "optimizer.safetensors"),
                buffers.Buffers.Select(b => SafetensorsEntry.FromFloats(b.Key, [b.Value.Length], b.Value))
                    .Concat(buffers.Codes.Select(b => SafetensorsEntry.FromBytes(b.Key, SafetensorsDType.U8, [b.Value.Length], b.Value))),
                new Dictionary<string, string> { ["step"] = buffers.Step.ToString(CultureInfo.InvariantCulture) });
            File.WriteAllText(Path.Combine(temp, "trainer_state.json"), StateJson(state, scaler, schedule));
            if (Directory.Exists(final)) Remove(outputDir, final);   // a rerun from an earlier checkpoint
            Directory.Move(temp, final);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); }
            catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            string earlier = List(outputDir) is { Count: > 0 } all ? $"{Path.GetFileName(all[^1].Dir)} and those before it are" : "nothing else was";
            throw new IOException($"{final}: the checkpoint could not be written ({Guard.Reason(e)}); {earlier} left as they were");
        }
        if (totalLimit is { } limit)
            foreach (var (_, dir) in List(outputDir).SkipLast(limit)) Remove(outputDir, dir);
    }

    /// <summary>A hidden sibling name that <see cref="List"/> never returns: .NAME.GUID.KIND.</summary>
    static string Hidden(string outputDir, string name, string kind) => Path.Combine(outputDir, $".{name}.{Guid.NewGuid():N}.{kind}");

    /// <summary>Deletes a checkpoint by first renaming it out of <see cref="List"/>'s sight (one atomic step), so a run killed
    /// mid-delete never leaves a checkpoint-N with files missing.</summary>
    static void Remove(string outputDir, string dir)
    {
        string doomed = Hidden(outputDir, Path.GetFileName(dir), "old");
        Directory.Move(dir, doomed);
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>What a killed run left in its output folder: partial checkpoints (.checkpoint-N.*.tmp), half-deleted ones
    /// (.checkpoint-N.*.old) and the temporary files of interrupted writes. The run starts by removing them.</summary>
    public static void RemoveLeftovers(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (string dir in Directory.GetDirectories(outputDir, "." + Prefix + "*"))
            if (dir.EndsWith(".tmp", StringComparison.Ordinal) || dir.EndsWith(".old", StringComparison.Ordinal))
                Directory.Delete(dir, recursive: true);
        AtomicFile.RemoveLeftovers(outputDir);
    }

    /// <summary>A component's folder, dir/NAME.</summary>
    public static void SaveComponent(string dir, TrainedComponent c)
    {
        string folder = Path.Combine(dir, c.Name);
        Directory.CreateDirectory(folder);
        c.Save(folder);
    }

    /// <summary>Restores weights, optimizer and scaler from a checkpoint; returns where the run stood.</summary>
    public static TrainingState Load(string dir, IReadOnlyList<TrainedComponent> components, Optimizer optimizer, GradScaler? scaler)
    {
        foreach (var c in components)
        {
            string folder = Path.Combine(dir, c.Name);
            if (!Directory.Exists(folder) || !Directory.EnumerateFiles(folder, "*.safetensors").Any())
                throw new FileNotFoundException($"{dir}: the checkpoint has no {c.Name}/ weights; was it written by a run with other options " +
                                                "(--train_text_encoder, --use_lora)?");
            c.Load(folder);
        }
        using (var file = SafetensorsFile.Open(Path.Combine(dir, "optimizer.safetensors")))
        {
            int step = int.Parse(file.Metadata.GetValueOrDefault("step") ?? throw new InvalidDataException($"{file.Path}: no step in the metadata"),
                CultureInfo.InvariantCulture);
            var codes = file.Tensors.Where(t => t.DType == SafetensorsDType.U8).ToDictionary(t => t.Name, t =>
            {
                var bytes = new byte[t.ByteCount];
                file.ReadBytes(t.Name, bytes);
                return bytes;
            });
            var floats = file.Tensors.Where(t => t.DType != SafetensorsDType.U8).ToDictionary(t => t.Name, t => file.ReadFloats(t.Name));
            try { optimizer.LoadState(new OptimizerState(step, floats, codes)); }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{file.Path}: {e.Message}; was the checkpoint written by a run with other options " +
                                               "(--use_8bit_adam, --train_text_encoder, --use_lora)?");
            }
        }
        string statePath = Path.Combine(dir, "trainer_state.json");
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(statePath))!.AsObject();
            if (scaler is not null && json["scaler"] is JsonObject s)
                scaler.LoadState(s["scale"]!.GetValue<float>(), s["clean_steps"]!.GetValue<int>());
            return new TrainingState(json["step"]!.GetValue<int>(), json["epoch"]!.GetValue<int>(), json["batch"]!.GetValue<int>(),
                json["micro_step"]!.GetValue<long>(), json["seed"]!.GetValue<ulong>());
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{statePath}: not a trainer state this trainer wrote ({e.Message})");
        }
    }

    static string StateJson(TrainingState state, GradScaler? scaler, LrSchedule schedule) => new JsonObject
    {
        ["step"] = state.Step, ["epoch"] = state.Epoch, ["batch"] = state.Batch, ["micro_step"] = state.MicroStep, ["seed"] = state.Seed,
        ["scaler"] = scaler is null ? null : new JsonObject { ["scale"] = scaler.Scale, ["clean_steps"] = scaler.CleanSteps },
        ["lr_scheduler"] = new JsonObject
        {
            ["name"] = schedule.Name, ["base_lr"] = schedule.BaseLr, ["warmup_steps"] = schedule.WarmupSteps,
            ["total_steps"] = schedule.TotalSteps, ["num_cycles"] = schedule.NumCycles, ["power"] = schedule.Power,
            ["next_lr"] = schedule.LrAt(state.Step),
        },
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
