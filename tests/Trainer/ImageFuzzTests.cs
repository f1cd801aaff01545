// Fuzzing the image loader with files made from the dataset's real photos: each is a correct decode or one clear error naming the file.
using DreamBooth.Trainer;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.Tests.Trainer;

/// <summary>
/// Sources: photos of ../shared/dreambooth-dataset (three subjects; tests/data/dog without it), reduced to 96 × 64 px so a case decodes in milliseconds,
/// and re-encoded as JPEG, PNG (8- and 16-bit, grey, alpha) and WebP, plus the CMYK JPEG of tests/data/images. Each case
/// takes one source and one seeded mutation: truncation, overwritten bytes, zero bytes, text under an image name, a
/// wrong extension, a header declaring a decompression bomb, or one of the 8 EXIF orientations. ImageFolder.Load must
/// decode it (an orientation of 5 to 8 swaps the sides) or throw an InvalidDataException that starts with the path.
/// </summary>
[TestFixture]
public class ImageFuzzTests
{
    string dir = "";

    [SetUp] public void CreateFolder() => dir = DreamBooth.Tests.Models.ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    [Test]
    public void MutatedImagesDecodeOrAreClearErrors() => Fuzz(seed: 1, cases: 150);

    [Test, Category("Slow")]
    public void AThousandMutatedImagesDecodeOrAreClearErrors() => Fuzz(seed: 2, cases: 1200);

    static readonly string[] Kinds = ["truncate", "overwrite-bytes", "zero-bytes", "text", "wrong-extension", "bomb", "orientation", "intact"];

    void Fuzz(int seed, int cases)
    {
        var sources = Sources();
        var rng = new Random(seed);
        var decoded = new Dictionary<string, int>();
        var rejected = new Dictionary<string, int>();
        for (int c = 0; c < cases; c++)
        {
            var (name, bytes) = sources[rng.Next(sources.Count)];
            string kind = Kinds[rng.Next(Kinds.Length)];
            string ext = Path.GetExtension(name);
            int orientation = 1;
            switch (kind)
            {
                case "truncate": bytes = bytes[..rng.Next(bytes.Length)]; break;
                case "overwrite-bytes":
                    bytes = (byte[])bytes.Clone();
                    for (int k = rng.Next(1, 9); k > 0; k--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                    break;
                case "zero-bytes": bytes = []; break;
                case "text": bytes = "this is not an image\n"u8.ToArray(); break;
                case "wrong-extension": ext = ext == ".png" ? ".jpg" : ".png"; break;
                case "bomb": bytes = PngDeclaring(width: 50_000 + rng.Next(50_000), height: 50_000); ext = ".png"; break;
                case "orientation":
                    orientation = rng.Next(1, 9);
                    bytes = WithOrientation(bytes, (ushort)orientation);
                    ext = ".jpg";
                    break;
            }
            string path = Path.Combine(dir, $"case{ext}");
            File.WriteAllBytes(path, bytes);
            try
            {
                var image = ImageFolder.Load(path, 32);
                Assert.That(image.Pixels, Has.All.InRange(-1f, 1f), $"case {c} ({kind} {name})");
                Assert.That(Math.Min(image.Height, image.Width), Is.EqualTo(32), $"case {c} ({kind} {name})");
                Assert.That(kind, Is.Not.EqualTo("truncate"), $"case {c}: a truncated {name} decoded (a decoder fills the rest with grey)");
                if (kind == "orientation")   // the sources are landscape or square; 5–8 turn them a quarter
                    Assert.That(image.Height >= image.Width, Is.EqualTo(orientation >= 5 || image.Height == image.Width), $"case {c} (orientation {orientation})");
                decoded[kind] = decoded.GetValueOrDefault(kind) + 1;
            }
            catch (InvalidDataException e)
            {
                Assert.That(e.Message, Does.StartWith(path + ":"), $"case {c} ({kind} {name})");
                Assert.That(kind, Is.Not.EqualTo("intact").And.Not.EqualTo("orientation").And.Not.EqualTo("wrong-extension"), $"case {c}: {e.Message}");
                rejected[kind] = rejected.GetValueOrDefault(kind) + 1;
            }
            catch (Exception e) { Assert.Fail($"case {c} ({kind} {name}): {e.GetType().Name}: {e.Message}"); }
        }
        TestContext.Out.WriteLine($"{cases} images: " + string.Join(", ", Kinds.Select(k => $"{k} {decoded.GetValueOrDefault(k)} decoded / {rejected.GetValueOrDefault(k)} rejected")));
        Assert.That(rejected.GetValueOrDefault("bomb") + rejected.GetValueOrDefault("zero-bytes") + rejected.GetValueOrDefault("text"), Is.GreaterThan(0));
    }

    /// <summary>The encoded sources, each a small landscape (or square) image.</summary>
    static List<(string Name, byte[] Bytes)> Sources()
    {
        var sources = new List<(string, byte[])>();
        foreach (string photo in Photos())
        {
            string subject = Path.GetFileName(Path.GetDirectoryName(photo))!;
            using var image = Image.Load<Rgb24>(photo);
            image.Mutate(x => x.AutoOrient().Resize(96, 64));
            sources.Add(($"{subject}.jpg", Encode(image, new JpegEncoder { Quality = 85 })));
            sources.Add(($"{subject}.png", Encode(image, new PngEncoder())));
            sources.Add(($"{subject}-16bit.png", Encode(image.CloneAs<Rgb48>(), new PngEncoder { BitDepth = PngBitDepth.Bit16 })));
            sources.Add(($"{subject}-grey.png", Encode(image.CloneAs<L8>(), new PngEncoder { ColorType = PngColorType.Grayscale })));
            sources.Add(($"{subject}-alpha.png", Encode(image.CloneAs<Rgba32>(), new PngEncoder { ColorType = PngColorType.RgbWithAlpha })));
            sources.Add(($"{subject}.webp", Encode(image, new WebpEncoder())));
        }
        sources.Add(("cmyk.jpg", File.ReadAllBytes(DreamBooth.Tests.Models.ModelData.Path("images", "cmyk.jpg"))));
        return sources;
    }

    /// <summary>The first photo of three subjects of ../shared/dreambooth-dataset (beside the repository), or, in a
    /// checkout without it, the four dog photos of tests/data (downscaled copies of the same dataset's).</summary>
    static IEnumerable<string> Photos()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string dataset = Path.Combine(d.FullName, "..", "shared", "dreambooth-dataset");
            if (File.Exists(Path.Combine(d.FullName, "DreamBooth.sln")) && Directory.Exists(dataset))
                return new[] { "dog", "cat", "teapot" }.Select(s => Directory.GetFiles(Path.Combine(dataset, s), "*.jpg").Order(StringComparer.Ordinal).First());
        }
        return Directory.GetFiles(DreamBooth.Tests.Models.ModelData.Path("dog"), "*.jpg").Order(StringComparer.Ordinal);
    }

    static byte[] Encode(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    static byte[] WithOrientation(byte[] source, ushort orientation)
    {
        using var image = Image.Load<Rgb24>(source);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        return Encode(image, new JpegEncoder());
    }

    /// <summary>A valid, tiny PNG whose header declares width × height: what a decompression bomb looks like before decoding.</summary>
    static byte[] PngDeclaring(int width, int height)
    {
        using var image = new Image<Rgb24>(1, 1);
        var png = Encode(image, new PngEncoder());
        // IHDR follows the 8-byte signature: length (4), "IHDR" (4), width (4), height (4), …, then its CRC over type and data
        void BigEndian(int at, uint v) { png[at] = (byte)(v >> 24); png[at + 1] = (byte)(v >> 16); png[at + 2] = (byte)(v >> 8); png[at + 3] = (byte)v; }
        BigEndian(16, (uint)width);
        BigEndian(20, (uint)height);
        BigEndian(29, Crc32(png.AsSpan(12, 17)));
        return png;
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320 & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }
}
