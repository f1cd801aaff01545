// Reading training images: every image file of a folder, EXIF-oriented, in RGB, resized, then cropped and flipped per draw.
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.Trainer;

/// <summary>An image resized so its shorter side is the training resolution: (3, Height, Width) in [−1, 1].</summary>
public sealed record TrainingImage(string Path, float[] Pixels, int Height, int Width);

public static class ImageFolder
{
    public static readonly string[] Extensions = [".jpg", ".jpeg", ".png", ".webp", ".bmp"];

    /// <summary>The largest image decoded, in pixels (PIL's MAX_IMAGE_PIXELS is 89.5 M): 128 M, an 11,585² photo.</summary>
    public const long DefaultMaxPixels = 128L << 20;

    /// <summary>The image files of a folder in name order (hidden files and other extensions are left out), with a clear
    /// error for a missing or empty folder.</summary>
    public static string[] List(string dir, string option)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{option} {dir}: no such folder");
        return Directory.GetFiles(dir).Where(IsImageName).Order(StringComparer.Ordinal).ToArray();
    }

    public static bool IsImageName(string path) =>
        !System.IO.Path.GetFileName(path).StartsWith('.') && Extensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// Decodes an image as diffusers' dataset does before its transforms: EXIF orientation applied (exif_transpose),
    /// converted to RGB (grey, palette, CMYK; alpha dropped), then resized with a bilinear, antialiased filter so the
    /// shorter side is <paramref name="size"/> (torchvision's Resize(size)). A file that is not a complete image, or whose
    /// header declares more than <paramref name="maxPixels"/> pixels (read before anything is decoded), is an error naming it.
    /// </summary>
    public static TrainingImage Load(string path, int size, long maxPixels = DefaultMaxPixels)
    {
        Image<Rgb24> image;
        try
        {
            CheckComplete(path);
            var info = Image.Identify(path) ?? throw new UnknownImageFormatException("unknown format");   // the header alone
            if ((long)info.Width * info.Height > maxPixels)
                throw new InvalidDataException($"{path}: {info.Width}×{info.Height} pixels is more than the {maxPixels:N0} allowed " +
                                               "(a decompression bomb? raise --max_image_pixels if the image is real)");
            image = Image.Load<Rgb24>(path);
        }
        catch (Exception e) when (e is not (InvalidDataException or IOException or UnauthorizedAccessException or OutOfMemoryException))
        {   // ImageSharp's own errors, and anything a crafted file provokes inside a decoder, stay one error naming the file
            throw new InvalidDataException($"{path}: not a readable image ({e.Message.Split('\n')[0].TrimEnd('.')})");
        }
        using (image)
        {
            image.Mutate(x => x.AutoOrient());
            var (h, w) = image.Height <= image.Width
                ? (size, (int)((long)size * image.Width / image.Height))
                : ((int)((long)size * image.Height / image.Width), size);
            if (h != image.Height || w != image.Width) image.Mutate(x => x.Resize(w, h, KnownResamplers.Triangle));
            var pixels = new float[3 * h * w];
            image.ProcessPixelRows(rows =>
            {
                for (int y = 0; y < h; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (int x = 0; x < w; x++)
                    {
                        int at = y * w + x;
                        pixels[at] = row[x].R / 127.5f - 1f;
                        pixels[h * w + at] = row[x].G / 127.5f - 1f;
                        pixels[2 * h * w + at] = row[x].B / 127.5f - 1f;
                    }
                }
            });
            return new TrainingImage(path, pixels, h, w);
        }
    }

    static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    static readonly byte[] PngEnd = [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82];   // "IEND" and its CRC

    /// <summary>A JPEG must end with its EOI marker, a PNG with its IEND chunk, and a WebP or BMP must be as long as its
    /// header says: decoders fill a truncated file with grey instead of failing, which would train on a half-grey image.</summary>
    static void CheckComplete(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new InvalidDataException($"{path}: the file is empty");
        var end = bytes.AsSpan().TrimEnd((byte)0);
        bool jpeg = bytes.Length > 2 && bytes[0] == 0xFF && bytes[1] == 0xD8;
        bool png = bytes.AsSpan().StartsWith(PngSignature);
        if (jpeg && end[Math.Max(0, end.Length - 1024)..].IndexOf([(byte)0xFF, (byte)0xD9]) < 0)   // some cameras append data after EOI
            throw new InvalidDataException($"{path}: truncated JPEG (no end-of-image marker)");
        if (png && !end.EndsWith(PngEnd))
            throw new InvalidDataException($"{path}: truncated PNG (no IEND chunk)");
        bool webp = bytes.Length >= 12 && bytes.AsSpan(0, 4).SequenceEqual("RIFF"u8) && bytes.AsSpan(8, 4).SequenceEqual("WEBP"u8);
        if (webp && 8L + BitConverter.ToUInt32(bytes, 4) > bytes.Length)
            throw new InvalidDataException($"{path}: truncated WebP (the RIFF header declares {8L + BitConverter.ToUInt32(bytes, 4)} bytes, the file has {bytes.Length})");
        bool bmp = bytes.Length >= 6 && bytes[0] == (byte)'B' && bytes[1] == (byte)'M';
        if (bmp && BitConverter.ToUInt32(bytes, 2) > bytes.Length)
            throw new InvalidDataException($"{path}: truncated BMP (the header declares {BitConverter.ToUInt32(bytes, 2)} bytes, the file has {bytes.Length})");
    }

    /// <summary>
    /// A (3, size, size) crop of a resized image: centred (torchvision's CenterCrop: top = round((H − size)/2)) or at a
    /// given random position, mirrored left-right when flip. u1, u2 in [0, 1) pick the random crop's corner.
    /// </summary>
    public static void Crop(Span<float> output,   // (3, size, size)
        TrainingImage image, int size, bool center, double u1, double u2, bool flip)
    {
        int top = center ? (int)Math.Round((image.Height - size) / 2.0, MidpointRounding.ToEven) : (int)(u1 * (image.Height - size + 1));
        int left = center ? (int)Math.Round((image.Width - size) / 2.0, MidpointRounding.ToEven) : (int)(u2 * (image.Width - size + 1));
        int plane = image.Height * image.Width;
        for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            output[(c * size + y) * size + x] = image.Pixels[c * plane + (top + y) * image.Width + left + (flip ? size - 1 - x : x)];
    }

    /// <summary>Nearest-neighbour upsampling by an integer factor: each pixel becomes a factor × factor block.</summary>
    public static float[] UpsampleNearest(ReadOnlySpan<float> input,   // (3, size, size)
        int size, int factor)                                          // → (3, size·factor, size·factor)
    {
        int high = size * factor;
        var result = new float[3 * high * high];
        for (int c = 0; c < 3; c++)
        for (int y = 0; y < high; y++)
        for (int x = 0; x < high; x++)
            result[(c * high + y) * high + x] = input[(c * size + y / factor) * size + x / factor];
        return result;
    }

    /// <summary>Area (box) downsampling by an integer factor: the antialiased low-res image of an SR training pair.</summary>
    public static void Downsample(Span<float> output,   // (3, size/factor, size/factor)
        ReadOnlySpan<float> input, int size, int factor)  // (3, size, size)
    {
        int low = size / factor;
        float norm = 1f / (factor * factor);
        for (int c = 0; c < 3; c++)
        for (int y = 0; y < low; y++)
        for (int x = 0; x < low; x++)
        {
            float sum = 0;
            for (int dy = 0; dy < factor; dy++)
            for (int dx = 0; dx < factor; dx++)
                sum += input[(c * size + y * factor + dy) * size + x * factor + dx];
            output[(c * low + y) * low + x] = sum * norm;
        }
    }
}
