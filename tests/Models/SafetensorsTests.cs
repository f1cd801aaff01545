// safetensors: bit-exact round trips for every dtype, the on-disk layout, and one clear error per kind of malformed file.
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using DreamBooth.Models.Formats;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class SafetensorsTests
{
    string dir = "";

    [SetUp] public void CreateFolder() => dir = ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    string File(string name) => Path.Combine(dir, name);

    static byte[] RandomBytes(int seed, long count)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A file built by hand from the spec: u64 header length, the header text, the data buffer.</summary>
    string RawFile(string header, byte[]? data = null, ulong? claimedHeaderLength = null)
    {
        string path = File("raw.safetensors");
        byte[] json = Encoding.UTF8.GetBytes(header);
        using var stream = System.IO.File.Create(path);
        stream.Write(BitConverter.GetBytes(claimedHeaderLength ?? (ulong)json.Length));
        stream.Write(json);
        stream.Write(data ?? []);
        return path;
    }

    static IEnumerable<SafetensorsDType> AllDTypes => Enum.GetValues<SafetensorsDType>();

    [TestCaseSource(nameof(AllDTypes))]
    public void EveryDTypeRoundTripsBitExact(SafetensorsDType dtype)
    {
        long[] shape = [3, 5, 7];
        byte[] data = RandomBytes((int)dtype, 3 * 5 * 7 * dtype.Size());
        string path = File("one.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromBytes("w", dtype, shape, data)]);

        using var file = SafetensorsFile.Open(path);
        var info = file["w"];
        Assert.That(info.DType, Is.EqualTo(dtype));
        Assert.That(info.Shape, Is.EqualTo(shape));
        Assert.That(info.ByteCount, Is.EqualTo(data.Length));
        var read = new byte[data.Length];
        file.ReadBytes("w", read);
        Assert.That(read, Is.EqualTo(data));
    }

    [Test]
    public void ManyTensorsAndMetadataRoundTrip()
    {
        var tensors = new Dictionary<string, (SafetensorsDType DType, long[] Shape, byte[] Data)>
        {
            ["down_blocks.0.resnets.0.conv1.weight"] = (SafetensorsDType.F32, [4, 3, 3, 3], RandomBytes(1, 4 * 27 * 4)),
            ["down_blocks.0.resnets.0.conv1.bias"] = (SafetensorsDType.F16, [4], RandomBytes(2, 8)),
            ["text_model.embeddings.position_ids"] = (SafetensorsDType.I64, [1, 77], RandomBytes(3, 77 * 8)),
            ["norm.weight"] = (SafetensorsDType.BF16, [5], RandomBytes(4, 10)),
            ["steps"] = (SafetensorsDType.I32, [], RandomBytes(5, 4)),                  // a scalar: empty shape, one element
            ["empty"] = (SafetensorsDType.F32, [0], []),                                 // zero elements, zero bytes
            ["empty.2d"] = (SafetensorsDType.F16, [3, 0], []),
            ["ünïcode.name"] = (SafetensorsDType.U8, [3], RandomBytes(6, 3)),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "café \"quoted\" ✓" };
        string path = File("many.safetensors");
        SafetensorsWriter.Write(path, tensors.Select(t => SafetensorsEntry.FromBytes(t.Key, t.Value.DType, t.Value.Shape, t.Value.Data)), metadata);

        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Metadata, Is.EquivalentTo(metadata));
        Assert.That(file.Tensors.Select(t => t.Name), Is.EquivalentTo(tensors.Keys));
        foreach (var (name, (dtype, shape, data)) in tensors)
        {
            var info = file[name];
            Assert.That((info.DType, info.Shape), Is.EqualTo((dtype, shape)), name);
            var read = new byte[info.ByteCount];
            file.ReadBytes(name, read);
            Assert.That(read, Is.EqualTo(data), name);
        }
        Assert.That(file["steps"].ElementCount, Is.EqualTo(1));
        Assert.That(file.ReadFloats("empty"), Is.Empty);
    }

    [Test]
    public void TheLayoutIsPaddedContiguousAndWidestFirst()
    {
        string path = File("layout.safetensors");
        SafetensorsWriter.Write(path,
        [
            SafetensorsEntry.FromBytes("b.f16", SafetensorsDType.F16, [3], RandomBytes(1, 6)),
            SafetensorsEntry.FromBytes("a.f16", SafetensorsDType.F16, [1], RandomBytes(2, 2)),
            SafetensorsEntry.FromBytes("z.i64", SafetensorsDType.I64, [2], RandomBytes(3, 16)),
            SafetensorsEntry.FromBytes("c.f32", SafetensorsDType.F32, [1], RandomBytes(4, 4)),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        byte[] bytes = System.IO.File.ReadAllBytes(path);
        ulong n = BitConverter.ToUInt64(bytes, 0);
        Assert.That(n % 8, Is.Zero, "header length is a multiple of 8");
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.That(header, Does.StartWith("{").And.EndWith("}" + new string(' ', header.Length - header.TrimEnd(' ').Length)));
        using var json = JsonDocument.Parse(header);
        var offsets = json.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
            .ToDictionary(p => p.Name, p => (p.Value.GetProperty("data_offsets")[0].GetInt64(), p.Value.GetProperty("data_offsets")[1].GetInt64()));
        // I64 (8-byte) first, then F32, then F16 by name: every tensor starts at a multiple of its element size.
        Assert.That(offsets["z.i64"], Is.EqualTo((0L, 16L)));
        Assert.That(offsets["c.f32"], Is.EqualTo((16L, 20L)));
        Assert.That(offsets["a.f16"], Is.EqualTo((20L, 22L)));
        Assert.That(offsets["b.f16"], Is.EqualTo((22L, 28L)));
        Assert.That(bytes.Length, Is.EqualTo(8 + (long)n + 28));
        Assert.That(json.RootElement.GetProperty("__metadata__").GetProperty("format").GetString(), Is.EqualTo("pt"));
    }

    [Test]
    public void AHandBuiltFileReadsAsTheSpecSays()
    {
        // 1.0, -2.0 and 65504 (the largest half) in F16, and 1.0, 3.140625 in BF16, as little-endian bit patterns.
        byte[] data = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x80, 0x3F, 0x49, 0x40];
        string path = RawFile("""{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]}}""", data);
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.ReadFloats("h"), Is.EqualTo(new[] { 1f, -2f, 65504f }));
        Assert.That(file.ReadFloats("b"), Is.EqualTo(new[] { 1f, 3.140625f }));
        Assert.That(file.Tensors.Select(t => t.Name), Is.EqualTo(new[] { "h", "b" }));
        Assert.That(file.Metadata, Is.Empty);
    }

    [TestCase(SafetensorsDType.F32)]
    [TestCase(SafetensorsDType.F16)]
    [TestCase(SafetensorsDType.BF16)]
    public void FloatsWrittenNarrowReadBackWidened(SafetensorsDType dtype)
    {
        // More elements than one conversion chunk (2^18), so the chunk loops of both writer and reader run more than once.
        const int Count = 300_001;
        var values = new float[Count];
        var rng = new Random(7);
        for (int i = 0; i < Count; i++) values[i] = (float)(rng.NextDouble() * 8 - 4);
        string path = File("floats.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromFloats("x", [Count], values, dtype)]);

        using var file = SafetensorsFile.Open(path);
        float[] read = file.ReadFloats("x");
        var bits = new ushort[Count];
        if (dtype != SafetensorsDType.F32) file.ReadBytes("x", MemoryMarshal.AsBytes(bits.AsSpan()));
        for (int i = 0; i < Count; i++)
        {
            float expected = dtype switch
            {
                SafetensorsDType.F32 => values[i],
                SafetensorsDType.F16 => (float)(Half)values[i],                // .NET's own narrowing: nearest, ties to even
                _ => BitConverter.UInt32BitsToSingle((uint)bits[i] << 16),    // bf16 is the top half of an f32
            };
            if (read[i] != expected) Assert.Fail($"element {i}: {values[i]} read back as {read[i]}, expected {expected}");
            // bf16 rounds to nearest: within half a unit in the last place (2^-8 relative) of the original.
            if (dtype == SafetensorsDType.BF16 && Math.Abs(read[i] - values[i]) > Math.Abs(values[i]) / 256)
                Assert.Fail($"element {i}: {values[i]} rounded to bf16 {read[i]}");
        }
    }

    [Test]
    public void BFloat16NarrowingRoundsHalfwayToEven()
    {
        // 1 + 2^-8 lies halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa, 1.0.
        // 1 + 3·2^-8 lies halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
        string path = File("ties.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromFloats("t", [2], new[] { 1f + 1f / 256, 1f + 3f / 256 }, SafetensorsDType.BF16)]);
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.ReadFloats("t"), Is.EqualTo(new[] { 1f, 1.015625f }));
    }

    [Test]
    public void ReadingFloatsOfAnIntegerTensorIsRefused()
    {
        string path = File("ints.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromBytes("ids", SafetensorsDType.I64, [2], new byte[16])]);
        using var file = SafetensorsFile.Open(path);
        Assert.That(() => file.ReadFloats("ids"), Throws.InvalidOperationException.With.Message.Contains("ids").And.Message.Contains("I64"));
        Assert.That(() => file["nope"], Throws.TypeOf<KeyNotFoundException>().With.Message.Contains("nope"));
        Assert.That(() => file.ReadBytes("ids", new byte[15]), Throws.ArgumentException.With.Message.Contains("16 bytes"));
    }

    [Test]
    public void AFailedWriteLeavesTheOldFileAndNoTemporaryFile()
    {
        string path = File("model.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromBytes("old", SafetensorsDType.U8, [1], new byte[] { 42 })]);
        byte[] before = System.IO.File.ReadAllBytes(path);

        var throwing = new SafetensorsEntry("w", SafetensorsDType.F32, [1024], s => { s.Write(new byte[100]); throw new IOException("disk on fire"); });
        Assert.That(() => SafetensorsWriter.Write(path, [throwing]), Throws.TypeOf<IOException>());
        var short_ = new SafetensorsEntry("short", SafetensorsDType.F32, [4], s => s.Write(new byte[12]));
        Assert.That(() => SafetensorsWriter.Write(path, [short_]),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("short").And.Message.Contains("wrote 12 bytes").And.Message.Contains("16"));

        Assert.That(System.IO.File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void TheWriterRefusesDuplicateNamesAndNegativeDims()
    {
        string path = File("bad.safetensors");
        Assert.That(() => SafetensorsWriter.Write(path,
            [SafetensorsEntry.FromBytes("a", SafetensorsDType.U8, [1], new byte[1]), SafetensorsEntry.FromBytes("a", SafetensorsDType.U8, [1], new byte[1])]),
            Throws.ArgumentException.With.Message.Contains("'a'"));
        Assert.That(() => SafetensorsWriter.Write(path, [SafetensorsEntry.FromBytes("n", SafetensorsDType.U8, [-1], new byte[0])]),
            Throws.ArgumentException.With.Message.Contains("'n'").And.Message.Contains("negative"));
        Assert.That(System.IO.File.Exists(path), Is.False);
    }

    // ---- malformed files: each is an InvalidDataException naming the file, and the tensor where there is one ----

    void AssertRejected(string path, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose())!;
        Assert.That(e.Message, Does.Contain(path));
        foreach (string f in fragments) Assert.That(e.Message, Does.Contain(f));
    }

    const string OneF32 = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    [Test]
    public void ValidBaseline() { using var f = SafetensorsFile.Open(RawFile(OneF32, new byte[8])); Assert.That(f["w"].ElementCount, Is.EqualTo(2)); }

    [Test]
    public void FileShorterThanTheLengthPrefix()
    {
        string path = File("tiny.safetensors");
        System.IO.File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        AssertRejected(path, "too short");
    }

    [Test] public void HeaderLengthPastTheEndOfTheFile() => AssertRejected(RawFile(OneF32, new byte[8], claimedHeaderLength: 1000), "1000");
    [Test] public void AbsurdHeaderLength() => AssertRejected(RawFile(OneF32, new byte[8], claimedHeaderLength: 1UL << 40), "1099511627776");
    [Test] public void HeaderIsNotJson() => AssertRejected(RawFile("{\"w\": {oops", new byte[8]), "not valid JSON");
    [Test] public void HeaderIsNotAnObject() => AssertRejected(RawFile("[1, 2, 3]"), "not an object");
    [Test] public void TensorEntryIsNotAnObject() => AssertRejected(RawFile("""{"w": 5}"""), "'w'", "not an object");

    [Test]
    public void UnknownDType() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}""", new byte[8]), "'w'", "unknown dtype \"F33\"");

    [Test]
    public void NegativeDimension() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}""", new byte[8]), "'w'", "negative");

    [Test]
    public void NonIntegerDimension() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", new byte[8]), "'w'", "non-integer");

    [TestCase("[0]")]
    [TestCase("[0, 4, 8]")]
    [TestCase("[\"0\", \"8\"]")]
    [TestCase("[-8, 0]")]
    [TestCase("{\"begin\": 0}")]
    public void DataOffsetsNotABeginEndPair(string offsets) =>
        AssertRejected(RawFile($$$"""{"w":{"dtype":"F32","shape":[2],"data_offsets":{{{offsets}}}}}""", new byte[8]), "'w'", "[begin, end]");

    [Test]
    public void DataOffsetsEndBeforeTheyBegin() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""", new byte[8]), "'w'", "end before");

    [Test]
    public void DataOffsetsPastTheBuffer() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[8]), "'w'", "run past the 8-byte data buffer");

    [Test]
    public void ByteCountDisagreesWithDTypeAndShape() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]), "'w'", "hold 8 bytes", "needs 12");

    [Test]
    public void ShapeTooLargeToCount() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", new byte[8]), "'w'", "too large");

    [Test]
    public void OverlappingTensors() =>
        AssertRejected(RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""",
            new byte[12]), "'a'", "'b'", "overlaps");

    [Test]
    public void AHoleBetweenTensors() =>
        AssertRejected(RawFile("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""",
            new byte[12]), "'b'", "[4, 8)", "unused");

    [Test]
    public void UnusedBytesAfterTheLastTensor() =>
        AssertRejected(RawFile(OneF32, new byte[12]), "cover 8 bytes of the 12-byte data buffer");

    [Test]
    public void DuplicateTensorNames() =>
        AssertRejected(RawFile("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""",
            new byte[8]), "'w' twice");

    [Test]
    public void MetadataValuesMustBeStrings() =>
        AssertRejected(RawFile("""{"__metadata__":{"epoch":3},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", new byte[8]),
            "__metadata__", "'epoch'", "not a string");

    [Test]
    public void MissingFileIsNamed() =>
        Assert.That(() => SafetensorsFile.Open(File("absent.safetensors")),
            Throws.TypeOf<FileNotFoundException>().With.Message.Contains("absent.safetensors"));
}
