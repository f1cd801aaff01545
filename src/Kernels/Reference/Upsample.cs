// Nearest-neighbour 2× upsampling of (planes, H, W) images, and its backward (sum over each 2×2 block).
namespace DreamBooth.Kernels.Reference;

public static class UpsampleReference
{

    public static void Forward(Span<double> y, ReadOnlySpan<double> x, int planes, int h, int w) // y (planes, 2H, 2W) x (planes, H, W)
    {
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < 2 * h; i++)
                for (int j = 0; j < 2 * w; j++)
                    y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
    }

    public static void Backward(Span<double> dx, ReadOnlySpan<double> dy, int planes, int h, int w) // dx (planes, H, W) dy (planes, 2H, 2W)
    {
        dx.Clear();
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < 2 * h; i++)
                for (int j = 0; j < 2 * w; j++)
                    dx[(p * h + i / 2) * w + j / 2] += dy[(p * 2 * h + i) * 2 * w + j];
    }
}

public sealed partial class ReferenceBackend
{
    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w)
    {
        UpsampleChecks.Validate("upsample nearest 2x", y, "y", x, "x", planes, h, w);
        var result = new double[y.Length];
        UpsampleReference.Forward(result, D(x), planes, h, w);
        Store(y, result);
    }

    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w)
    {
        UpsampleChecks.Validate("upsample nearest 2x backward", dy, "dy", dx, "dx", planes, h, w);
        var result = new double[dx.Length];
        UpsampleReference.Backward(result, D(dy), planes, h, w);
        Store(dx, result);
    }
}
