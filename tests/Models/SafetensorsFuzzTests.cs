// Fuzzing the safetensors reader with seeded mutations of a valid file: each case is a clear error naming the file, or a correct load.
using System.Text;
using System.Text.Json.Nodes;
using DreamBooth.Models.Formats;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

/// <summary>
/// Every case starts from one valid file (five tensors of different dtypes, one of them empty, and metadata) and applies
/// one seeded mutation: a truncation, a rewritten header length, flipped header bytes, a structural edit of the header
/// JSON (offsets out of range, overlapping or not matching dtype × shape, unknown dtypes, negative or huge shapes,
/// duplicate keys, missing fields, non-string metadata), NaN payloads, or junk appended. Opening it and reading every
/// tensor must either succeed or throw an InvalidDataException whose message starts with the file's path; anything else
/// (another exception, a crash) fails the test with the case's number and kind. The managed bytes allocated per case stay
/// within a small multiple of the file's size, so a header cannot make the reader allocate what the file does not hold.
/// </summary>
[TestFixture]
public class SafetensorsFuzzTests
{
    string dir = "";

    [SetUp] public void CreateFolder() => dir = ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    [Test]
    public void MutatedFilesAreClearErrorsOrCorrectLoads() => Fuzz(seed: 1, cases: 400);

    [Test, Category("Slow")]
    public void ThousandsOfMutatedFilesAreClearErrorsOrCorrectLoads() => Fuzz(seed: 2, cases: 4000);

    static readonly string[] Kinds = ["truncate", "header-length", "flip-header-bytes", "edit-json", "duplicate-key", "nan-payload", "append-junk"];

    void Fuzz(int seed, int cases)
    {
        string valid = Path.Combine(dir, "valid.safetensors"), path = Path.Combine(dir, "case.safetensors");
        var rng = new Random(seed);
        SafetensorsWriter.Write(valid,
        [
            SafetensorsEntry.FromFloats("w", [2, 3], Enumerable.Range(0, 6).Select(i => i * 0.5f).ToArray()),
            SafetensorsEntry.FromFloats("h", [4], new float[] { 1, -2, 3, -4 }, SafetensorsDType.F16),
            SafetensorsEntry.FromFloats("b", [1], new float[] { 7 }, SafetensorsDType.BF16),
            SafetensorsEntry.FromBytes("i", SafetensorsDType.I64, [2], new byte[16]),
            SafetensorsEntry.FromBytes("empty", SafetensorsDType.U8, [0], Array.Empty<byte>()),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        byte[] original = File.ReadAllBytes(valid);
        var loaded = new Dictionary<string, int>();
        var rejected = new Dictionary<string, int>();
        for (int c = 0; c < cases; c++)
        {
            string kind = Kinds[rng.Next(Kinds.Length)];
            byte[] bytes = Mutate(original, kind, rng);
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (var t in file.Tensors) file.ReadBytes(t.Name, new byte[t.ByteCount]);
                if (file.Contains("w") && file["w"].DType == SafetensorsDType.F32 && kind == "nan-payload")
                    Assert.That(file.ReadFloats("w"), Has.All.Matches<float>(v => !float.IsFinite(v)), $"case {c} ({kind}): the payload reads back as written");
                loaded[kind] = loaded.GetValueOrDefault(kind) + 1;
            }
            catch (InvalidDataException e)
            {
                Assert.That(e.Message, Does.StartWith(path + ":"), $"case {c} ({kind})");
                Assert.That(e.Message, Does.Not.Contain("LineNumber"), $"case {c} ({kind})");
                rejected[kind] = rejected.GetValueOrDefault(kind) + 1;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {c} ({kind}): {e.GetType().Name}: {e.Message}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(allocated, Is.LessThan(64L * bytes.Length + (1 << 20)), $"case {c} ({kind}): allocated {allocated} bytes for a {bytes.Length}-byte file");
        }
        TestContext.Out.WriteLine($"{cases} cases: " + string.Join(", ", Kinds.Select(k => $"{k} {loaded.GetValueOrDefault(k)} loaded / {rejected.GetValueOrDefault(k)} rejected")));
        Assert.That(loaded.Values.Sum(), Is.GreaterThan(0), "some mutations keep the file valid");
        Assert.That(rejected.Values.Sum(), Is.GreaterThan(cases / 4), "most mutations are caught");
    }

    static byte[] Mutate(byte[] valid, string kind, Random rng)
    {
        int headerLength = (int)BitConverter.ToUInt64(valid, 0);
        byte[] header = valid[8..(8 + headerLength)], data = valid[(8 + headerLength)..];
        switch (kind)
        {
            case "truncate":
                return valid[..rng.Next(valid.Length)];
            case "header-length":
            {
                ulong[] choices = [0, 1, (ulong)headerLength - 1, (ulong)headerLength + 1, (ulong)valid.Length, ulong.MaxValue, 1UL << 40,
                    (ulong)rng.NextInt64(0, 200_000_000)];
                var copy = (byte[])valid.Clone();
                BitConverter.GetBytes(choices[rng.Next(choices.Length)]).CopyTo(copy, 0);
                return copy;
            }
            case "flip-header-bytes":
            {
                var copy = (byte[])valid.Clone();
                for (int k = rng.Next(1, 5); k > 0; k--) copy[8 + rng.Next(headerLength)] = (byte)rng.Next(256);
                return copy;
            }
            case "edit-json":
                return Assemble(Encoding.UTF8.GetBytes(EditJson(Encoding.UTF8.GetString(header), rng)), data);
            case "duplicate-key":
            {   // the same tensor name twice, with the second entry's offsets unchanged or moved
                var root = JsonNode.Parse(header)!.AsObject();
                string name = root.Select(p => p.Key).Where(k => k != "__metadata__").ElementAt(rng.Next(root.Count - 1));
                string entry = root[name]!.ToJsonString();
                string text = Encoding.UTF8.GetString(header);
                return Assemble(Encoding.UTF8.GetBytes(text[..^1] + $",\"{name}\":{entry}}}"), data);
            }
            case "nan-payload":
            {
                var copy = (byte[])valid.Clone();
                var root = JsonNode.Parse(header)!.AsObject();
                long begin = root["w"]!["data_offsets"]![0]!.GetValue<long>(), end = root["w"]!["data_offsets"]![1]!.GetValue<long>();
                for (long at = begin; at < end; at += 4) BitConverter.GetBytes(rng.Next(2) == 0 ? float.NaN : float.PositiveInfinity).CopyTo(copy, 8 + headerLength + at);
                return copy;
            }
            default:   // append-junk: bytes past the data buffer
            {
                var junk = new byte[rng.Next(1, 64)];
                rng.NextBytes(junk);
                return [.. valid, .. junk];
            }
        }
    }

    static byte[] Assemble(byte[] header, byte[] data) => [.. BitConverter.GetBytes((ulong)header.Length), .. header, .. data];

    /// <summary>One structural change to one tensor entry, or to the metadata.</summary>
    static string EditJson(string header, Random rng)
    {
        var root = JsonNode.Parse(header)!.AsObject();
        var names = root.Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        var entry = root[names[rng.Next(names.Count)]]!.AsObject();
        long[] numbers = [-1, 0, 1, 3, 7, 8, 1 << 20, long.MaxValue, int.MaxValue + 1L];
        switch (rng.Next(9))
        {
            case 0: entry["data_offsets"] = new JsonArray(numbers[rng.Next(numbers.Length)], numbers[rng.Next(numbers.Length)]); break;
            case 1: entry["data_offsets"] = new JsonArray(0, 8); break;                             // overlaps or mismatches
            case 2: entry["dtype"] = new[] { "F8", "X", "f32", "", "F32 " }[rng.Next(5)]; break;
            case 3: entry["dtype"] = new[] { "F64", "U8", "BOOL", "F16" }[rng.Next(4)]; break;       // size no longer matches
            case 4: entry["shape"] = new JsonArray(numbers[rng.Next(numbers.Length)], numbers[rng.Next(numbers.Length)]); break;
            case 5: entry.Remove(new[] { "dtype", "shape", "data_offsets" }[rng.Next(3)]); break;
            case 6: entry["shape"] = JsonValue.Create("[2, 3]"); break;
            case 7: root["__metadata__"] = new JsonObject { ["format"] = 5 }; break;
            default: entry["data_offsets"] = new JsonArray(1.5, "8"); break;
        }
        return root.ToJsonString();
    }
}
