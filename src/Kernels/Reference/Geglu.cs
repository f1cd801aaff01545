// GEGLU, the gated GELU of the transformer feed-forward: [h | gate] = x, y = h·gelu(gate), and its backward.
namespace DreamBooth.Kernels.Reference;

public static class GegluReference
{

    public static void Forward(Span<double> y, ReadOnlySpan<double> x, int rows, int dim) // y (rows, dim) x (rows, 2·dim)
    {
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < dim; j++)
            {
                double h = x[r * 2 * dim + j], gate = x[r * 2 * dim + dim + j];
                y[r * dim + j] = h * UnaryReference.Gelu(gate);
            }
    }

    public static void Backward(Span<double> dx, ReadOnlySpan<double> dy, ReadOnlySpan<double> x, int rows, int dim) // dx, x (rows, 2·dim) dy (rows, dim)
    {
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < dim; j++)
            {
                double h = x[r * 2 * dim + j], gate = x[r * 2 * dim + dim + j], g = dy[r * dim + j];
                dx[r * 2 * dim + j] = g * UnaryReference.Gelu(gate);                              // ∂y/∂h = gelu(gate)
                dx[r * 2 * dim + dim + j] = g * h * UnaryReference.GeluDerivative(gate);           // ∂y/∂gate = h·gelu'(gate)
            }
    }
}

public sealed partial class ReferenceBackend
{
    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        GegluChecks.Validate("geglu", rows, dim, ("y", y, 1), ("x", x, 2));
        var result = new double[y.Length];
        GegluReference.Forward(result, D(x), rows, dim);
        Store(y, result);
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        GegluChecks.Validate("geglu backward", rows, dim, ("dx", dx, 2), ("dy", dy, 1), ("x", x, 2));
        var result = new double[dx.Length];
        GegluReference.Backward(result, D(dy), D(x), rows, dim);
        Store(dx, result);
    }
}
