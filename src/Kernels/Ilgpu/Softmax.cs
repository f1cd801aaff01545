// CUDA-tier softmax over the last axis of (rows, cols): one group per row, online max/sum in one pass, then the write.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>? _softmax;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>? _softmaxBackward;

    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax", y, "y", x, "x", x, "x", rows, cols);
        const string op = "softmax";
        _softmax ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Forward);
        var args = SoftmaxKernels.Args.From(rows, cols);
        _softmax(SoftmaxKernels.Config(args), F(op, y), F(op, x), args);
    }

    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols)
    {
        SoftmaxChecks.Validate("softmax backward", dx, "dx", dy, "dy", y, "y", rows, cols);
        const string op = "softmax backward";
        _softmaxBackward ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Backward);
        var args = SoftmaxKernels.Args.From(rows, cols);
        _softmaxBackward(SoftmaxKernels.Config(args), F(op, dx), F(op, dy), F(op, y), args);
    }
}

/// <summary>
/// Semantics of SoftmaxReference. Group r strides over row r with coalesced loads. Forward: each thread keeps a running
/// max m and Σ exp(x − m) (rescaled when m grows), RowReduce.MaxSum merges the partials, and the second pass writes
/// exp(x − max)/sum, so x is read twice and nothing else is stored. Backward: the group reduces Σ dy·y, then writes
/// dx = y·(dy − Σ dy·y). On PTX XMath.Exp is ex2.approx of x·log2(e) (a few ulp), so GPU results differ from the CPU
/// emulator's in the last bits. Indices are int: rows·cols &lt; 2^31 (SoftmaxChecks.Validate).
/// </summary>
public static class SoftmaxKernels
{
    public readonly record struct Args(int Rows, int Cols)
    {
        public static Args From(int rows, int cols) => new(rows, cols);
    }

    /// <summary>One group per row, sized to the row.</summary>
    public static KernelConfig Config(in Args a) => new(new Index1D(a.Rows), new Index1D(RowReduce.GroupSize(a.Cols)));

    [GpuKernel("softmax_f32", explicitlyGrouped: true)]
    public static void Forward(ArrayView<float> y, ArrayView<float> x, Args p) // (rows, cols) (rows, cols)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int start = Grid.IdxX * p.Cols;
        float m = float.NegativeInfinity, s = 0f; // s = Σ exp(x − m) over this thread's elements
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
        {
            float v = x[start + j];
            if (v > m)
            {
                s = s * XMath.Exp(m - v) + 1f;
                m = v;
            }
            else if (s > 0f)
                s += XMath.Exp(v - m);
        }
        var row = RowReduce.MaxSum(scratch, new(m, s));
        float inv = 1f / row.B;
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
            y[start + j] = XMath.Exp(x[start + j] - row.A) * inv;
    }

    [GpuKernel("softmax_backward_f32", explicitlyGrouped: true)]
    public static void Backward(ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> y, Args p) // (rows, cols) ×3
    {
        var scratch = SharedMemory.Allocate<float>(RowReduce.MaxWarps);
        int start = Grid.IdxX * p.Cols;
        float dot = 0f;
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX) dot += dy[start + j] * y[start + j];
        dot = RowReduce.Sum(scratch, dot);
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
            dx[start + j] = y[start + j] * (dy[start + j] - dot);
    }
}
