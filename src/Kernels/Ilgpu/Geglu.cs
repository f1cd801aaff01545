// CUDA-tier GEGLU: y = h·gelu(gate) for x = [h | gate] per row, and its backward; one thread per output column of a row.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, GegluKernels.Args>? _geglu;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GegluKernels.Args>? _gegluBackward;

    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        GegluChecks.Validate("geglu", rows, dim, ("y", y, 1), ("x", x, 2));
        _geglu ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, GegluKernels.Args>(GegluKernels.Forward);
        var args = GegluKernels.Args.From(rows, dim);
        _geglu(rows * dim, F("geglu", y), F("geglu", x), args);
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        const string name = "geglu backward";
        GegluChecks.Validate(name, rows, dim, ("dx", dx, 2), ("dy", dy, 1), ("x", x, 2));
        _gegluBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GegluKernels.Args>(GegluKernels.Backward);
        var args = GegluKernels.Args.From(rows, dim);
        _gegluBackward(rows * dim, F(name, dx), F(name, dy), F(name, x), args);
    }
}

/// <summary>
/// Thread i owns element (r, j) of y (rows, dim): it reads h = x[r, j] and gate = x[r, dim + j] (both coalesced across
/// the warp), and writes y[r, j]; the backward writes dx[r, j] = dy·gelu(gate) and dx[r, dim + j] = dy·h·gelu'(gate).
/// The exact GELU uses UnaryKernels.NormalCdf (f32 erf fits; see UnaryKernels for CPU vs GPU accuracy).
/// Element counts (rows·2·dim) below 2^31 per launch.
/// </summary>
public static class GegluKernels
{
    const float InvSqrt2Pi = 0.39894228f;   // 1/√(2π)

    public readonly record struct Args(int Dim)
    {
        public static Args From(int rows, int dim) => (long)rows * dim * 2 < int.MaxValue
            ? new(dim) : throw new ArgumentException($"geglu: rows·2·dim must stay below 2^31 per launch");
    }

    [GpuKernel("geglu_f32")]
    public static void Forward(Index1D i, ArrayView<float> y, ArrayView<float> x, Args p) // y (rows, dim) x (rows, 2·dim)
    {
        int r = i / p.Dim, j = i - r * p.Dim, h = r * 2 * p.Dim + j;
        float gate = x[h + p.Dim];
        y[i] = x[h] * gate * UnaryKernels.NormalCdf(gate, out _);
    }

    [GpuKernel("geglu_backward_f32")]
    public static void Backward(Index1D i, ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> x, Args p) // dx, x (rows, 2·dim) dy (rows, dim)
    {
        int r = i / p.Dim, j = i - r * p.Dim, h = r * 2 * p.Dim + j;
        float gate = x[h + p.Dim], g = dy[i];
        float cdf = UnaryKernels.NormalCdf(gate, out float gauss);
        dx[h] = g * gate * cdf;                                                   // ∂y/∂h = gelu(gate)
        dx[h + p.Dim] = g * x[h] * (cdf + gate * InvSqrt2Pi * gauss);             // ∂y/∂gate = h·(Φ + gate·φ)
    }
}
