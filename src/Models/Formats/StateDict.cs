// A model's parameters to and from a .safetensors file: the keys are the parameter paths, so loading is a lookup.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Formats;

public static class StateDict
{
    /// <summary>
    /// Fills every parameter of <paramref name="store"/> from the file, one tensor at a time (F32, F16 or BF16 widen to
    /// f32). Strict like torch's load_state_dict(strict=True): a parameter the file lacks, a tensor the model does not
    /// have, or a shape that differs is an error naming the file and the keys. <paramref name="mapKey"/> renames file
    /// keys first (legacy VAE attention names); <paramref name="ignore"/> lists keys of buffers that are not parameters
    /// (CLIP's position_ids). A linear weight stored as a 1×1 convolution, (O, I, 1, 1) for (O, I), is accepted, as the
    /// legacy VAE attention layers stored theirs.
    /// </summary>
    public static void Load(ParameterStore store, string path, Func<string, string>? mapKey = null, IReadOnlySet<string>? ignore = null)
    {
        using var file = SafetensorsFile.Open(path);
        var seen = new HashSet<string>();
        var unexpected = new List<string>();
        foreach (var info in file.Tensors)
        {
            if (ignore?.Contains(info.Name) == true) continue;
            string key = mapKey?.Invoke(info.Name) ?? info.Name;
            if (!store.TryGet(key, out var p)) { unexpected.Add(info.Name); continue; }
            if (!SameShape(info.Shape, p.Shape))
                throw new InvalidDataException($"{path}: tensor '{info.Name}' has shape {Format(info.Shape)}, the model's '{key}' is {Format(p.Shape)}");
            if (info.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
                throw new InvalidDataException($"{path}: tensor '{info.Name}' is {info.DType}; parameters load from F32, F16 or BF16");
            if (!seen.Add(key)) throw new InvalidDataException($"{path}: two tensors map to the parameter '{key}'");
            store.Backend.Upload<float>(p.Value.Storage, file.ReadFloats(info.Name));
        }
        var missing = store.Named.Select(n => n.Name).Where(n => !seen.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{path}: {missing.Count} parameter(s) of the model are not in the file: {List(missing)}");
        if (unexpected.Count > 0)
            throw new InvalidDataException($"{path}: {unexpected.Count} tensor(s) in the file are not parameters of the model: {List(unexpected)}");
    }

    /// <summary>Writes every parameter under its path, as F32 or narrowed to F16/BF16, with the metadata diffusers writes
    /// ("format": "pt"). Through a temporary file, so an existing file is replaced only by a complete one.</summary>
    public static void Save(ParameterStore store, string path, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        var entries = store.Named.Select(n => new SafetensorsEntry(n.Name, dtype, Array.ConvertAll(n.Parameter.Shape, d => (long)d),
            stream =>
            {
                var values = new float[n.Parameter.Length];
                store.Backend.Download<float>(values, n.Parameter.Value.Storage);
                SafetensorsEntry.FromFloats(n.Name, [], values, dtype).WriteData(stream);
            }));
        SafetensorsWriter.Write(path, entries, new Dictionary<string, string> { ["format"] = "pt" });
    }

    static bool SameShape(long[] file, int[] model)
    {
        if (file.Length == model.Length) return file.AsSpan().SequenceEqual(Array.ConvertAll(model, d => (long)d));
        return model.Length == 2 && file.Length == 4 && file[2] == 1 && file[3] == 1 && file[0] == model[0] && file[1] == model[1];
    }

    static string Format<T>(T[] shape) => "[" + string.Join(", ", shape) + "]";

    static string List(List<string> keys) => string.Join(", ", keys.Take(5)) + (keys.Count > 5 ? $", ... ({keys.Count - 5} more)" : "");
}
