// Reading typed fields out of a diffusers/transformers config.json with clear errors, and writing one back atomically.
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DreamBooth.Models.Formats;

namespace DreamBooth.Models.Configs;

/// <summary>The root object of one config file. A missing key takes the caller's default (the library default);
/// a present key of the wrong JSON type is an error naming the file and the key. null counts as a value: only
/// the Nullable readers accept it.</summary>
sealed class ConfigReader
{
    public string Path { get; }
    public JsonElement Root { get; }

    ConfigReader(string path, JsonElement root) { Path = path; Root = root; }

    public static ConfigReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such config file", path);
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            root = document.RootElement.Clone();
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {Formats.Wording.Json(e)}", e); }
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: a JSON {root.ValueKind}, not an object");
        return new ConfigReader(path, root);
    }

    public InvalidDataException Error(string key, string problem) => new($"{Path}: \"{key}\" {problem}");

    bool TryGet(string key, out JsonElement value) => Root.TryGetProperty(key, out value);

    /// <summary>Whether the file sets this key (to anything but null).</summary>
    public bool Has(string key) => TryGet(key, out var v) && v.ValueKind != JsonValueKind.Null;

    InvalidDataException WrongType(string key, string expected, JsonElement value) =>
        Error(key, $"must be {expected}, not {value.GetRawText()}");

    public int Int(string key, int fallback) => TryGet(key, out var v) ? AsInt(key, v) : fallback;
    /// <summary>A size or a count: an integer of at least 1.</summary>
    public int PositiveInt(string key, int fallback) => Positive(key, Int(key, fallback));
    public int? NullableInt(string key, int? fallback) =>
        !TryGet(key, out var v) ? fallback : v.ValueKind == JsonValueKind.Null ? null : AsInt(key, v);
    public double Double(string key, double fallback) => TryGet(key, out var v) ? AsDouble(key, v) : fallback;
    public bool Bool(string key, bool fallback) => TryGet(key, out var v) ? AsBool(key, v) : fallback;
    public string String(string key, string fallback) => TryGet(key, out var v) ? AsString(key, v) : fallback;
    public string? NullableString(string key, string? fallback) =>
        !TryGet(key, out var v) ? fallback : v.ValueKind == JsonValueKind.Null ? null : AsString(key, v);
    public int[] Ints(string key, int[] fallback) => TryGet(key, out var v) ? Array(key, v, "a list of integers", AsInt) : fallback;
    public string[] Strings(string key, string[] fallback) => TryGet(key, out var v) ? Array(key, v, "a list of strings", AsString) : fallback;
    public double[]? NullableDoubles(string key) =>
        !TryGet(key, out var v) || v.ValueKind == JsonValueKind.Null ? null : Array(key, v, "a list of numbers", AsDouble);

    /// <summary>A positive int meaning "the same for every block", or a list with one positive value per block.</summary>
    public int[] IntPerBlock(string key, int fallback, int blocks)
    {
        if (!TryGet(key, out var v)) return Enumerable.Repeat(fallback, blocks).ToArray();
        int[] values = v.ValueKind == JsonValueKind.Array ? Array(key, v, "an integer or a list of integers", AsInt)
            : Enumerable.Repeat(AsInt(key, v), blocks).ToArray();
        if (values.Length != blocks) throw Error(key, $"lists {values.Length} values for {blocks} blocks");
        foreach (int value in values) Positive(key, value);
        return values;
    }

    /// <summary>A bool meaning "the same for every block", or a list with one value per block.</summary>
    public bool[] BoolPerBlock(string key, bool fallback, int blocks)
    {
        if (!TryGet(key, out var v)) return Enumerable.Repeat(fallback, blocks).ToArray();
        bool[] values = v.ValueKind == JsonValueKind.Array ? Array(key, v, "a bool or a list of bools", AsBool)
            : Enumerable.Repeat(AsBool(key, v), blocks).ToArray();
        if (values.Length != blocks) throw Error(key, $"lists {values.Length} values for {blocks} blocks");
        return values;
    }

    /// <summary>"down_block_types" and "up_block_types", each entry one of the supported types, and
    /// "block_out_channels", the three lists one entry per block.</summary>
    public (string[] Down, string[] Up, int[] Channels) BlockLayout(string[] downFallback, string[] upFallback,
        int[] channelsFallback, string[] downTypes, string[] upTypes)
    {
        string[] down = Strings("down_block_types", downFallback), up = Strings("up_block_types", upFallback);
        int[] channels = Ints("block_out_channels", channelsFallback);
        foreach (string t in down) OneOf("down_block_types", t, downTypes);
        foreach (string t in up) OneOf("up_block_types", t, upTypes);
        foreach (int c in channels) Positive("block_out_channels", c);
        if (down.Length != channels.Length || up.Length != channels.Length)
            throw Error("block_out_channels", $"lists {channels.Length} blocks, but \"down_block_types\" lists {down.Length} and \"up_block_types\" {up.Length}");
        return (down, up, channels);
    }

    /// <summary>Checks that every block's channel count splits into norm_num_groups groups.</summary>
    public void ExpectGroupsDivide(int[] channels, int groups)
    {
        foreach (int c in channels)
            if (c % groups != 0) throw Error("block_out_channels", $"has {c} channels, not a multiple of norm_num_groups {groups}");
    }

    /// <summary>Checks that a present "_class_name" names the class this config is for.</summary>
    public void ExpectClass(string className)
    {
        string found = String("_class_name", className);
        if (found != className) throw Error("_class_name", $"is \"{found}\": this is not a {className} config");
    }

    /// <summary>Checks that value is one of the supported choices.</summary>
    public string OneOf(string key, string value, params string[] supported) =>
        supported.Contains(value) ? value : throw Error(key, $"is \"{value}\", which is not supported (supported: {string.Join(", ", supported)})");

    public int OneOf(string key, int value, params int[] supported) =>
        supported.Contains(value) ? value : throw Error(key, $"is {value}, which is not supported (supported: {string.Join(", ", supported)})");

    int Positive(string key, int value) => value > 0 ? value : throw Error(key, $"is {value}, not a positive integer");

    int AsInt(string key, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw WrongType(key, "an integer", v);
    }

    double AsDouble(string key, JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw WrongType(key, "a number", v);

    bool AsBool(string key, JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw WrongType(key, "true or false", v),
    };

    string AsString(string key, JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw WrongType(key, "a string", v);

    T[] Array<T>(string key, JsonElement v, string expected, Func<string, JsonElement, T> item) =>
        v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => item(key, e)).ToArray() : throw WrongType(key, expected, v);
}

/// <summary>Writes a config as indented JSON with the keys in the order given; Save goes through a temp file and a rename.</summary>
static class ConfigWriter
{
    public static string ToJson(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    public static void Save(string path, string json) =>
        AtomicFile.Write(path, temp => File.WriteAllText(temp, json, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)));

    public static void Ints(this Utf8JsonWriter w, string key, IEnumerable<int> values)
    {
        w.WriteStartArray(key);
        foreach (int v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    public static void Strings(this Utf8JsonWriter w, string key, IEnumerable<string> values)
    {
        w.WriteStartArray(key);
        foreach (string v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    public static void NullableInt(this Utf8JsonWriter w, string key, int? value)
    {
        if (value is int v) w.WriteNumber(key, v); else w.WriteNull(key);
    }

    public static void NullableString(this Utf8JsonWriter w, string key, string? value)
    {
        if (value is null) w.WriteNull(key); else w.WriteString(key, value);
    }
}
