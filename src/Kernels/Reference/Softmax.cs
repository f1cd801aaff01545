// Softmax over the last axis of (rows, cols): the double oracle (forward, backward), its validation, and the reference entry points.
namespace DreamBooth.Kernels.Reference;

public static class SoftmaxReference
{
    /// <summary>y = exp(x − max) / Σ exp(x − max) per row; subtracting the row max keeps exp from overflowing.</summary>
    public static void Forward(Span<double> y, ReadOnlySpan<double> x, int rows, int cols) // (rows, cols) (rows, cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var xs = x.Slice(r * cols, cols);
            var ys = y.Slice(r * cols, cols);
            double max = double.NegativeInfinity, sum = 0;
            foreach (double v in xs) max = Math.Max(max, v);
            for (int j = 0; j < cols; j++) sum += ys[j] = Math.Exp(xs[j] - max);
            for (int j = 0; j < cols; j++) ys[j] /= sum;
        }
    }

    /// <summary>dx = y·(dy − Σ dy·y) per row (overwritten).</summary>
    public static void Backward(Span<double> dx, ReadOnlySpan<double> dy, ReadOnlySpan<double> y, int rows, int cols) // (rows, cols) ×3
    {
        for (int r = 0; r < rows; r++)
        {
            double dot = 0;
            for (int j = 0; j < cols; j++) dot += dy[r * cols + j] * y[r * cols + j];
            for (int j = 0; j < cols; j++) dx[r * cols + j] = y[r * cols + j] * (dy[r * cols + j] - dot);
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax", y, "y", x, "x", x, "x", rows, cols);
        var yd = new double[y.Length];
        SoftmaxReference.Forward(yd, D(x), rows, cols);
        Store(y, yd);
    }

    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax backward", dx, "dx", dy, "dy", y, "y", rows, cols);
        var dxd = new double[dx.Length];
        SoftmaxReference.Backward(dxd, D(dy), D(y), rows, cols);
        Store(dx, dxd);
    }
}
