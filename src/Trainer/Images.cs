// Writing images: one (3, H, W) array in [0, 1] as an RGB PNG, or a batch as a grid; both through a temporary file.
using DreamBooth.Models.Formats;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Trainer;

public static class Images
{
    /// <summary>Image i of a batch (N, 3, H, W) with values in [0, 1] as an 8-bit RGB PNG.</summary>
    public static void SavePng(string path, float[] batch, int i, int height, int width)
    {
        using var image = new Image<Rgb24>(width, height);
        Paste(image, batch, i, height, width, 0, 0);
        Save(image, path);
    }

    /// <summary>All N images of the batch (N, 3, H, W) side by side, ⌈√N⌉ (or <paramref name="columns"/>) per row, 2 pixels
    /// apart on white.</summary>
    public static void SaveGrid(string path, float[] batch, int count, int height, int width, int? columns = null)
    {
        const int Gap = 2;
        int perRow = columns ?? (int)Math.Ceiling(Math.Sqrt(count)), rows = (count + perRow - 1) / perRow;
        using var grid = new Image<Rgb24>(perRow * (width + Gap) - Gap, rows * (height + Gap) - Gap, new Rgb24(255, 255, 255));
        for (int i = 0; i < count; i++) Paste(grid, batch, i, height, width, i % perRow * (width + Gap), i / perRow * (height + Gap));
        Save(grid, path);
    }

    static void Paste(Image<Rgb24> target, float[] batch, int i, int height, int width, int left, int top)
    {
        long plane = (long)height * width, start = 3 * plane * i;
        static byte Byte(float v) => (byte)Math.Clamp(MathF.Round(v * 255f), 0f, 255f);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
        {
            long at = start + (long)y * width + x;
            target[left + x, top + y] = new Rgb24(Byte(batch[at]), Byte(batch[at + plane]), Byte(batch[at + 2 * plane]));
        }
    }

    static void Save(Image image, string path) => AtomicFile.Write(path, temp => image.SaveAsPng(temp));
}
