// CUDA-tier layer normalisation over the last dim of (rows, dim): one group per row, and 32-column tiles for dgamma/dbeta.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>? _layerNorm, _layerNormDx, _layerNormParams;

    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int rows, int dim, float eps)
    {
        LayerNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, rows, dim, eps);
        const string op = "layer norm";
        _layerNorm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.Forward);
        var args = LayerNormKernels.Args.From(rows, dim, eps);
        _layerNorm(LayerNormKernels.Config(args), F(op, y), F(op, mean), F(op, rstd), F(op, x), F(op, gamma), F(op, beta), args);
    }

    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        LayerNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, rows, dim);
        const string op = "layer norm backward";
        _layerNormParams ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardParams);
        _layerNormDx ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardDx);
        var args = LayerNormKernels.Args.From(rows, dim);
        // Parameter gradients first: they read dy, which dx may overwrite in place.
        _layerNormParams(LayerNormKernels.ParamConfig(args), F(op, dgamma), F(op, dbeta), F(op, dy), F(op, x), F(op, mean), F(op, rstd), args);
        _layerNormDx(LayerNormKernels.Config(args), F(op, dx), F(op, dy), F(op, x), F(op, mean), F(op, rstd), F(op, gamma), args);
    }
}

/// <summary>
/// Semantics of LayerNormReference. Group r strides over row r with coalesced loads; statistics take one pass (sums of
/// d and d² with d = x − x[r, 0]) reduced by RowReduce, and the affine is fused into the write of y. Backward: group r
/// reduces Σ dy·gamma and Σ dy·gamma·xhat and writes dx; dgamma/dbeta come from a second kernel whose 32×8 groups own
/// 32 columns: a warp reads 32 consecutive columns of one row (coalesced), the 8 warps take every 8th row, and the 8
/// partials per column are added in a fixed order and then added to dgamma/dbeta (no atomics, deterministic).
/// Indices are int: rows·dim &lt; 2^31 (LayerNormChecks.Validate).
/// </summary>
public static class LayerNormKernels
{
    const int TileColumns = 32, TileRows = 8;

    public readonly record struct Args(int Rows, int Dim, float Eps)
    {
        public static Args From(int rows, int dim, float eps = 0f) => new(rows, dim, eps);
    }

    /// <summary>Forward and dx: one group per row, sized to the row.</summary>
    public static KernelConfig Config(in Args a) => new(new Index1D(a.Rows), new Index1D(RowReduce.GroupSize(a.Dim)));

    /// <summary>dgamma/dbeta: one 32×8 group per 32 columns.</summary>
    public static KernelConfig ParamConfig(in Args a) =>
        new(new Index2D((a.Dim + TileColumns - 1) / TileColumns, 1), new Index2D(TileColumns, TileRows));

    [GpuKernel("layer_norm_f32", explicitlyGrouped: true)]
    public static void Forward(ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, // (rows, dim) (rows) (rows)
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, Args p) // (rows, dim) (dim) (dim)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int row = Grid.IdxX, start = row * p.Dim;
        float shift = x[start];
        var moments = RowReduce.ShiftedMoments(scratch, x, start, p.Dim, shift, p.Eps);
        float mu = moments.A, r = moments.B; // mean of x − shift, 1/√(var + eps)
        if (Group.IdxX == 0)
        {
            mean[row] = shift + mu;
            rstd[row] = r;
        }
        for (int j = Group.IdxX; j < p.Dim; j += Group.DimX)
            y[start + j] = (x[start + j] - shift - mu) * r * gamma[j] + beta[j];
    }

    [GpuKernel("layer_norm_backward_dx_f32", explicitlyGrouped: true)]
    public static void BackwardDx(ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> x, // (rows, dim) ×3
        ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> gamma, Args p) // (rows) (rows) (dim)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int row = Grid.IdxX, start = row * p.Dim;
        float mu = mean[row], r = rstd[row];
        float sumD = 0f, sumDX = 0f; // Σ dxhat, Σ dxhat·xhat with dxhat = dy·gamma
        for (int j = Group.IdxX; j < p.Dim; j += Group.DimX)
        {
            float dxhat = dy[start + j] * gamma[j];
            sumD += dxhat;
            sumDX += dxhat * (x[start + j] - mu) * r;
        }
        var sums = RowReduce.Sum2(scratch, sumD, sumDX);
        float meanD = sums.A / p.Dim, meanDX = sums.B / p.Dim;
        for (int j = Group.IdxX; j < p.Dim; j += Group.DimX)
            dx[start + j] = r * (dy[start + j] * gamma[j] - meanD - (x[start + j] - mu) * r * meanDX);
    }

    [GpuKernel("layer_norm_backward_params_f32", explicitlyGrouped: true)]
    public static void BackwardParams(ArrayView<float> dgamma, ArrayView<float> dbeta, // (dim) (dim), accumulated
        ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, Args p) // (rows, dim) ×2 (rows) (rows)
    {
        var partDX = SharedMemory.Allocate<float>(TileRows * TileColumns); // [row slice][column]
        var partD = SharedMemory.Allocate<float>(TileRows * TileColumns);
        int tx = Group.IdxX, ty = Group.IdxY, j = Grid.IdxX * TileColumns + tx;
        float sumDX = 0f, sumD = 0f; // this thread's column j over rows ty, ty + 8, ...
        if (j < p.Dim)
            for (int r = ty; r < p.Rows; r += TileRows)
            {
                float d = dy[r * p.Dim + j];
                sumDX += d * (x[r * p.Dim + j] - mean[r]) * rstd[r];
                sumD += d;
            }
        partDX[ty * TileColumns + tx] = sumDX;
        partD[ty * TileColumns + tx] = sumD;
        Group.Barrier();
        if (ty == 0 && j < p.Dim)
        {
            for (int k = 1; k < TileRows; k++)
            {
                sumDX += partDX[k * TileColumns + tx];
                sumD += partD[k * TileColumns + tx];
            }
            dgamma[j] += sumDX;
            dbeta[j] += sumD;
        }
    }
}
