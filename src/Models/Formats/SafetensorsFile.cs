// Reads a .safetensors file: parses and validates the header, then reads one tensor at a time straight from disk.
using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using DreamBooth.Kernels;

namespace DreamBooth.Models.Formats;

/// <summary>One tensor of a safetensors file. Begin/End are byte offsets into the data buffer that follows the header;
/// FileOffset is where the bytes start in the file.</summary>
public sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End, long FileOffset)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
    public long ByteCount => End - Begin;
}

/// <summary>
/// Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON mapping each tensor name to
/// {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__" string map), then the data buffer.
/// Open reads only the header; tensors are read on demand with positioned reads, so a file of any size costs no more
/// memory than the tensor being read. Validation follows the reference library: every tensor's byte range matches its
/// dtype and shape, and the ranges tile the data buffer exactly (no overlap, no hole, no trailing bytes).
/// Every problem is an <see cref="InvalidDataException"/> naming the file and, where there is one, the tensor.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>The reference library refuses headers above 100 MB; a real one is a few hundred KB.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public string Path { get; }
    /// <summary>The tensors in the order of their bytes in the file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    readonly Dictionary<string, SafetensorsTensorInfo> byName;
    readonly SafeFileHandle handle;

    SafetensorsFile(string path, SafeFileHandle handle, List<SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        this.handle = handle;
        Tensors = tensors;
        Metadata = metadata;
        byName = tensors.ToDictionary(t => t.Name);
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such safetensors file", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var (tensors, metadata) = ReadHeader(path, handle);
            return new SafetensorsFile(path, handle, tensors, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public SafetensorsTensorInfo this[string name] =>
        byName.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"{Path}: no tensor '{name}'");

    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>Copies the tensor's raw little-endian bytes into destination, which must be exactly its size.</summary>
    public void ReadBytes(string name, Span<byte> destination) // (ByteCount)
    {
        var info = this[name];
        if (destination.Length != info.ByteCount)
            throw new ArgumentException($"{Path}: tensor '{name}' has {info.ByteCount} bytes, destination holds {destination.Length}");
        ReadExactly(info, info.FileOffset, destination);
    }

    /// <summary>Reads an F32, F16 or BF16 tensor as f32 (the narrow types widen exactly) into destination.</summary>
    public void ReadFloats(string name, Span<float> destination) // (ElementCount)
    {
        var info = this[name];
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"{Path}: tensor '{name}' has {info.ElementCount} elements, destination holds {destination.Length}");
        switch (info.DType)
        {
            case SafetensorsDType.F32:
                ReadExactly(info, info.FileOffset, MemoryMarshal.AsBytes(destination));
                return;
            case SafetensorsDType.F16 or SafetensorsDType.BF16:
                bool half = info.DType == SafetensorsDType.F16;
                const int Chunk = 1 << 18;                                // elements per read: 512 KB of 16-bit values
                ushort[] buffer = ArrayPool<ushort>.Shared.Rent(Chunk);
                try
                {
                    for (int start = 0; start < destination.Length; start += Chunk)
                    {
                        int count = Math.Min(Chunk, destination.Length - start);
                        Span<ushort> bits = buffer.AsSpan(0, count);
                        ReadExactly(info, info.FileOffset + 2L * start, MemoryMarshal.AsBytes(bits));
                        Span<float> dst = destination.Slice(start, count);
                        for (int i = 0; i < count; i++)
                            dst[i] = half ? HalfPrecision.HalfToFloat(bits[i]) : HalfPrecision.BFloat16ToFloat(bits[i]);
                    }
                }
                finally { ArrayPool<ushort>.Shared.Return(buffer); }
                return;
            default:
                throw new InvalidOperationException($"{Path}: tensor '{name}' is {info.DType}, not F32, F16 or BF16");
        }
    }

    public float[] ReadFloats(string name)
    {
        var info = this[name];
        if (info.ElementCount > Array.MaxLength)
            throw new InvalidOperationException($"{Path}: tensor '{name}' has {info.ElementCount} elements, more than one array holds");
        var values = new float[info.ElementCount];
        ReadFloats(name, values);
        return values;
    }

    public void Dispose() => handle.Dispose();

    void ReadExactly(SafetensorsTensorInfo info, long offset, Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n == 0) throw new InvalidDataException($"{Path}: tensor '{info.Name}': the file ends before its bytes do (was it truncated after opening?)");
            destination = destination[n..];
            offset += n;
        }
    }

    static (List<SafetensorsTensorInfo>, Dictionary<string, string>) ReadHeader(string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
            throw new InvalidDataException($"{path}: {Wording.Count(fileLength, "byte")} is too short for a safetensors file (the header length alone is 8 bytes)");
        Span<byte> prefix = stackalloc byte[8];
        RandomAccess.Read(handle, prefix, 0);
        ulong headerLength = BitConverter.ToUInt64(prefix);
        if (headerLength > MaxHeaderBytes)
            throw new InvalidDataException($"{path}: the header claims {Wording.Count(headerLength, "byte")}, more than the {MaxHeaderBytes} allowed (not a safetensors file?)");
        if ((long)headerLength > fileLength - 8)
            throw new InvalidDataException($"{path}: the header claims {Wording.Count(headerLength, "byte")} but only {fileLength - 8} follow the length prefix");

        var header = new byte[headerLength];
        if (RandomAccess.Read(handle, header, 8) != header.Length)
            throw new InvalidDataException($"{path}: could not read the {headerLength}-byte header");
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;

        if (!System.Text.Unicode.Utf8.IsValid(header))   // JsonDocument checks escapes lazily, when a name or string is read
            throw new InvalidDataException($"{path}: the header is not UTF-8 text");
        JsonDocument document;
        try { document = JsonDocument.Parse(header); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: the header is not valid JSON: {Wording.Json(e)}", e); }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: the header is a JSON {document.RootElement.ValueKind}, not an object");
            var tensors = new List<SafetensorsTensorInfo>();
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new InvalidDataException($"{path}: the header names '{property.Name}' twice");
                if (property.Name == "__metadata__") ReadMetadata(path, property.Value, metadata);
                else tensors.Add(ReadTensor(path, property.Name, property.Value, dataStart, dataLength));
            }
            CheckCoverage(path, tensors, dataLength);
            return (tensors, metadata);
        }
    }

    static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: __metadata__ is a JSON {value.ValueKind}, not an object of strings");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{path}: __metadata__ '{entry.Name}' is a JSON {entry.Value.ValueKind}, not a string");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new InvalidDataException($"{path}: __metadata__ names '{entry.Name}' twice");
        }
    }

    static SafetensorsTensorInfo ReadTensor(string path, string name, JsonElement value, long dataStart, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: entry is a JSON {value.ValueKind}, not an object");

        if (!value.TryGetProperty("dtype", out var dtypeValue) || dtypeValue.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: no \"dtype\" string");
        var dtype = SafetensorsDTypes.Parse(dtypeValue.GetString()!)
            ?? throw new InvalidDataException($"{where}: unknown dtype \"{dtypeValue.GetString()}\" (known: {string.Join(", ", Enum.GetNames<SafetensorsDType>())})");

        if (!value.TryGetProperty("shape", out var shapeValue) || shapeValue.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{where}: no \"shape\" array");
        var shape = new long[shapeValue.GetArrayLength()];
        int axis = 0;
        foreach (var dim in shapeValue.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long d))
                throw new InvalidDataException($"{where}: shape [{shapeValue.GetRawText()}] has a non-integer dimension");
            if (d < 0) throw new InvalidDataException($"{where}: shape {shapeValue.GetRawText()} has a negative dimension");
            shape[axis++] = d;
        }

        if (!value.TryGetProperty("data_offsets", out var offsetsValue) || offsetsValue.ValueKind != JsonValueKind.Array
            || offsetsValue.GetArrayLength() != 2
            || offsetsValue.EnumerateArray().Any(o => o.ValueKind != JsonValueKind.Number || !o.TryGetInt64(out long v) || v < 0))
            throw new InvalidDataException($"{where}: \"data_offsets\" must be [begin, end], two non-negative integers");
        long begin = offsetsValue[0].GetInt64(), end = offsetsValue[1].GetInt64();
        if (begin > end) throw new InvalidDataException($"{where}: data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw new InvalidDataException($"{where}: data_offsets [{begin}, {end}] run past the {dataLength}-byte data buffer");

        long expected;
        try { expected = checked(shape.Aggregate((long)dtype.Size(), (n, d) => n * d)); }
        catch (OverflowException) { throw new InvalidDataException($"{where}: shape {shapeValue.GetRawText()} is too large"); }
        if (end - begin != expected)
            throw new InvalidDataException(
                $"{where}: data_offsets [{begin}, {end}] hold {Wording.Count(end - begin, "byte")}, but {dtype} of shape {shapeValue.GetRawText()} needs {expected}");
        return new SafetensorsTensorInfo(name, dtype, shape, begin, end, dataStart + begin);
    }

    /// <summary>Sorts the tensors by offset and checks that they tile [0, dataLength) with no overlap and no hole.</summary>
    static void CheckCoverage(string path, List<SafetensorsTensorInfo> tensors, long dataLength)
    {
        tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long covered = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var t in tensors)
        {
            if (t.Begin < covered)
                throw new InvalidDataException($"{path}: tensor '{t.Name}' [{t.Begin}, {t.End}) overlaps tensor '{previous!.Name}' [{previous.Begin}, {previous.End})");
            if (t.Begin > covered)
                throw new InvalidDataException($"{path}: tensor '{t.Name}' starts at {t.Begin}, leaving bytes [{covered}, {t.Begin}) of the data buffer unused");
            covered = t.End;
            previous = t;
        }
        if (covered != dataLength)
            throw new InvalidDataException($"{path}: the tensors cover {Wording.Count(covered, "byte")} of the {dataLength}-byte data buffer; the rest is unused");
    }
}
