// Reductions: ReduceSum over any set of axes (scaled, so a mean too) and SumSquares (Σx², for gradient clipping).
namespace DreamBooth.Kernels.Reference;

public static class ReduceReference
{

    /// <summary>y = scale · Σ x over the dims where yShape is 1 (x's other dims kept in place).</summary>
    public static void Sum(Span<double> y, ReadOnlySpan<double> x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, double scale) // y (yShape) x (xShape)
    {
        y.Clear();
        for (int i = 0; i < x.Length; i++) y[(int)Target(i, xShape, yShape)] += x[i];
        for (int i = 0; i < y.Length; i++) y[i] *= scale;
    }

    /// <summary>The index in y of x's element i: walk x's coordinates from the last dim, using 0 along the reduced dims.</summary>
    static long Target(long i, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape)
    {
        long rest = i, yi = 0, yStride = 1;
        for (int d = xShape.Length - 1; d >= 0; d--)
        {
            long coord = rest % xShape[d];
            rest /= xShape[d];
            if (yShape[d] != 1) yi += coord * yStride;
            yStride *= yShape[d];
        }
        return yi;
    }

    /// <summary>The backward of Sum: every x element receives scale·dy of the y element it fed.</summary>
    public static void SumBackward(Span<double> dx, ReadOnlySpan<double> dy, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, double scale)
    {
        for (int i = 0; i < dx.Length; i++) dx[i] = scale * dy[(int)Target(i, xShape, yShape)];
    }

    public static double SumSquares(ReadOnlySpan<double> x) // x (n)
    {
        double sum = 0;
        foreach (double v in x) sum += v * v;
        return sum;
    }
}

public sealed partial class ReferenceBackend
{
    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        ReduceChecks.Validate(y, x, xShape, yShape);
        var result = new double[y.Length];
        ReduceReference.Sum(result, D(x), xShape, yShape, scale);
        Store(y, result);
    }

    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        ReduceChecks.ValidateSumSquares(result, x, n);
        Store(result, [ReduceReference.SumSquares(D(x))]);
    }
}
