// --concepts_list: several subjects in one run, as a JSON list of {instance_prompt, class_prompt, instance_data_dir, class_data_dir}.
using System.Text.Json;

namespace DreamBooth.Trainer;

public static class ConceptsFile
{
    /// <summary>The concepts of the file, in order; instance_prompt and instance_data_dir are required in each entry,
    /// the class fields only with prior preservation (checked with the other options).</summary>
    public static IReadOnlyList<Concept> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--concepts_list {path}: no such file");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({Models.Formats.Wording.Json(e)})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0)
                throw new InvalidDataException($"{path}: expected a non-empty JSON list of concepts");
            return doc.RootElement.EnumerateArray().Select((e, i) =>
            {
                string? Field(string name, bool required)
                {
                    if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String)
                        return v.GetString();
                    return required ? throw new InvalidDataException($"{path}: concept {i} has no \"{name}\" string") : null;
                }
                return new Concept(Field("instance_data_dir", true)!, Field("instance_prompt", true)!,
                    Field("class_data_dir", false), Field("class_prompt", false));
            }).ToList();
        }
    }
}
