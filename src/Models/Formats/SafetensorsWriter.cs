// Writes a .safetensors file: a space-padded header, then each tensor streamed in turn, into a temp file renamed at the end.
using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DreamBooth.Kernels;

namespace DreamBooth.Models.Formats;

/// <summary>One tensor to write: its header entry and a callback that writes exactly its bytes (little-endian), so a
/// caller can stream a tensor from wherever it lives without first gathering the whole file in memory.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, Action<Stream> WriteData)
{
    public long ByteCount => Shape.Aggregate((long)DType.Size(), (n, d) => checked(n * d));

    public static SafetensorsEntry FromBytes(string name, SafetensorsDType dtype, long[] shape, ReadOnlyMemory<byte> data) // (bytes)
        => new(name, dtype, shape, stream => stream.Write(data.Span));

    /// <summary>f32 values stored as F32, or narrowed to F16 / BF16 (round to nearest even) while they are written.</summary>
    public static SafetensorsEntry FromFloats(string name, long[] shape, ReadOnlyMemory<float> values, SafetensorsDType dtype = SafetensorsDType.F32) // (elements)
    {
        if (dtype is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw new ArgumentException($"tensor '{name}': floats can be stored as F32, F16 or BF16, not {dtype}", nameof(dtype));
        return new(name, dtype, shape, stream =>
        {
            if (dtype == SafetensorsDType.F32) { stream.Write(MemoryMarshal.AsBytes(values.Span)); return; }
            const int Chunk = 1 << 18;                                    // elements per write: 512 KB of 16-bit values
            ushort[] buffer = ArrayPool<ushort>.Shared.Rent(Chunk);
            try
            {
                for (int start = 0; start < values.Length; start += Chunk)
                {
                    int count = Math.Min(Chunk, values.Length - start);
                    ReadOnlySpan<float> src = values.Span.Slice(start, count);
                    for (int i = 0; i < count; i++)
                        buffer[i] = dtype == SafetensorsDType.F16 ? HalfPrecision.FloatToHalf(src[i]) : HalfPrecision.FloatToBFloat16(src[i]);
                    stream.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, count)));
                }
            }
            finally { ArrayPool<ushort>.Shared.Return(buffer); }
        });
    }
}

public static class SafetensorsWriter
{
    /// <summary>
    /// Writes the tensors and metadata to path. Tensors are laid out widest dtype first, then by name (UTF-8 byte
    /// order), as the reference library does, so each starts aligned to its element size; the header is padded with
    /// spaces to a multiple of 8 bytes. The file is written under a temporary name in the same folder and renamed over
    /// path only once complete, so path never holds a half-written file.
    /// </summary>
    public static void Write(string path, IEnumerable<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = tensors.ToList();
        Validate(path, entries);
        entries.Sort((a, b) => a.DType != b.DType ? b.DType.CompareTo(a.DType)
            : Encoding.UTF8.GetBytes(a.Name).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b.Name)));
        byte[] header = Header(entries, metadata);

        AtomicFile.Write(path, temp =>
        {
            using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            Span<byte> prefix = stackalloc byte[8];
            BitConverter.TryWriteBytes(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var entry in entries)
            {
                long start = stream.Position;
                entry.WriteData(stream);
                long written = stream.Position - start;
                if (written != entry.ByteCount)
                    throw new InvalidDataException(
                        $"{path}: tensor '{entry.Name}': wrote {written} bytes, but {entry.DType} of shape [{string.Join(", ", entry.Shape)}] needs {entry.ByteCount}");
            }
            stream.Flush(flushToDisk: true);
        });
    }

    static void Validate(string path, List<SafetensorsEntry> entries)
    {
        var names = new HashSet<string>();
        foreach (var e in entries)
        {
            if (string.IsNullOrEmpty(e.Name) || e.Name == "__metadata__")
                throw new ArgumentException($"{path}: '{e.Name}' cannot name a tensor");
            if (!names.Add(e.Name)) throw new ArgumentException($"{path}: tensor '{e.Name}' is given twice");
            if (e.Shape.Any(d => d < 0))
                throw new ArgumentException($"{path}: tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] has a negative dimension");
        }
    }

    static byte[] Header(List<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(m => m.Key, StringComparer.Ordinal)) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in entries)
            {
                writer.WriteStartObject(e.Name);
                writer.WriteString("dtype", e.DType.ToString());
                writer.WriteStartArray("shape");
                foreach (long d in e.Shape) writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset += e.ByteCount);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
        }
        int padded = (json.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        return header;
    }
}
