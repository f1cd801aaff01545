// CUDA-tier nearest-neighbour 2× upsampling of (planes, H, W) and its backward (each 2×2 block of dy summed).
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>? _upsample, _upsampleBackward;

    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w)
    {
        const string name = "upsample nearest 2x";
        UpsampleChecks.Validate(name, y, "y", x, "x", planes, h, w);
        _upsample ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Forward);
        var args = UpsampleKernels.Args.From(planes, h, w);
        _upsample(4 * planes * h * w, F(name, y), F(name, x), args);
    }

    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w)
    {
        const string name = "upsample nearest 2x backward";
        UpsampleChecks.Validate(name, dy, "dy", dx, "dx", planes, h, w);
        _upsampleBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Backward);
        var args = UpsampleKernels.Args.From(planes, h, w);
        _upsampleBackward(planes * h * w, F(name, dx), F(name, dy), args);
    }
}

/// <summary>
/// Forward: thread i owns y[i] of (planes, 2H, 2W) and reads x at (row/2, col/2); a warp writes 32 consecutive floats
/// and reads 16 (each twice, from cache). Backward: thread i owns dx[i] of (planes, H, W) and sums its 2×2 block of dy in
/// a fixed order (top-left, top-right, bottom-left, bottom-right), so no atomics and the same result every run.
/// Element counts (planes·4HW) below 2^31 per launch.
/// </summary>
public static class UpsampleKernels
{
    public readonly record struct Args(int H, int W)
    {
        public static Args From(int planes, int h, int w) => 4L * planes * h * w < int.MaxValue
            ? new(h, w) : throw new ArgumentException("upsample: planes·4HW must stay below 2^31 per launch");
    }

    [GpuKernel("upsample_nearest2x_f32")]
    public static void Forward(Index1D i, ArrayView<float> y, ArrayView<float> x, Args p) // y (planes, 2H, 2W) x (planes, H, W)
    {
        int w2 = 2 * p.W, row = i / w2, col = i - row * w2;                 // row over planes·2H
        int plane = row / (2 * p.H), r = row - plane * 2 * p.H;
        y[i] = x[(plane * p.H + r / 2) * p.W + col / 2];
    }

    [GpuKernel("upsample_nearest2x_backward_f32")]
    public static void Backward(Index1D i, ArrayView<float> dx, ArrayView<float> dy, Args p) // dx (planes, H, W) dy (planes, 2H, 2W)
    {
        int row = i / p.W, col = i - row * p.W;                              // row over planes·H; dy row 2·row
        int top = 2 * row * 2 * p.W + 2 * col, bottom = top + 2 * p.W;
        dx[i] = dy[top] + dy[top + 1] + dy[bottom] + dy[bottom + 1];
    }
}
