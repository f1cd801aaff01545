// model_index.json of a diffusers pipeline folder: the pipeline class and, per component folder, its library and class.
using System.Text.Json;

namespace DreamBooth.Models.Configs;

/// <summary>One component: the sub-folder name and the (library, class) that loads it, e.g. unet → (diffusers,
/// UNet2DConditionModel). Both are null for a component left out of the pipeline (e.g. safety_checker: [null, null]).</summary>
public sealed record PipelineComponent(string Name, string? Library, string? ClassName);

/// <summary>Keys starting with "_" are the pipeline's own (_class_name, _diffusers_version); a key whose value is a
/// two-item list is a component; any other key (e.g. requires_safety_checker) is a pipeline argument kept as its JSON.</summary>
public sealed record ModelIndex(string ClassName, string? DiffusersVersion, IReadOnlyList<PipelineComponent> Components,
    IReadOnlyDictionary<string, string> Arguments)
{
    public PipelineComponent? Component(string name) => Components.FirstOrDefault(c => c.Name == name);

    public static ModelIndex Load(string path)
    {
        var r = ConfigReader.Open(path);
        string className = r.Root.TryGetProperty("_class_name", out _) ? r.String("_class_name", "")
            : throw r.Error("_class_name", "is missing: every model_index.json names its pipeline class");
        string? version = r.NullableString("_diffusers_version", null);
        var components = new List<PipelineComponent>();
        var arguments = new Dictionary<string, string>();
        foreach (var property in r.Root.EnumerateObject())
        {
            if (property.Name.StartsWith('_')) continue;
            var v = property.Value;
            if (v.ValueKind != JsonValueKind.Array) { arguments[property.Name] = v.GetRawText(); continue; }
            if (v.GetArrayLength() != 2 || v.EnumerateArray().Any(e => e.ValueKind is not (JsonValueKind.String or JsonValueKind.Null)))
                throw r.Error(property.Name, $"must be [library, class] (strings, or nulls for a left-out component), not {v.GetRawText()}");
            components.Add(new PipelineComponent(property.Name, v[0].GetString(), v[1].GetString()));
        }
        return new ModelIndex(className, version, components, arguments);
    }

    public string ToJson() => ConfigWriter.ToJson(w =>
    {
        w.WriteString("_class_name", ClassName);
        if (DiffusersVersion is not null) w.WriteString("_diffusers_version", DiffusersVersion);
        foreach (var (key, json) in Arguments)
        {
            w.WritePropertyName(key);
            w.WriteRawValue(json);
        }
        foreach (var c in Components)
        {
            w.WriteStartArray(c.Name);
            if (c.Library is null) w.WriteNullValue(); else w.WriteStringValue(c.Library);
            if (c.ClassName is null) w.WriteNullValue(); else w.WriteStringValue(c.ClassName);
            w.WriteEndArray();
        }
    });

    public void Save(string path) => ConfigWriter.Save(path, ToJson());
}
