// CUDA-tier ReduceSum: y = scale·Σ x over the dims where yShape is 1, one thread per output element, deterministic.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>? _reduce;

    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        ReduceChecks.Validate(y, x, xShape, yShape);
        _reduce ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        var args = ReduceKernels.Args.From(xShape, yShape, scale);
        _reduce(args.Count, F("reduce sum", y), F("reduce sum", x), args);
    }
}

/// <summary>
/// Thread i owns y element i: it maps i to the x offset of its first input through the kept dims (Y, XKept: x strides
/// on kept dims, 0 on reduced ones), then sums every input over the reduced dims (R, XReduced: sizes and x strides of
/// the reduced dims, 1 and 0 on kept ones) in row-major order, in f32, and writes scale·sum once. No atomics, so the
/// result is the same on every run. Consecutive threads read consecutive x when the last dim is kept (the usual case:
/// reducing batch/broadcast dims of a gradient); reducing the last dim makes each thread walk its own contiguous run.
/// Element counts below 2^31 per launch.
/// </summary>
public static class ReduceKernels
{
    public readonly record struct Args(Dims6 Y, Strides6 XKept, Dims6 R, Strides6 XReduced, float Scale)
    {
        /// <summary>Shapes as given to ReduceReference.Sum: same rank, each y dim equal to x's or 1.</summary>
        public static Args From(ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
        {
            if (xShape.Length != yShape.Length) throw new ArgumentException("reduce sum: x and y shapes need the same rank");
            Dims6 x = Dims6.From(xShape), y = Dims6.From(yShape);
            var dense = x.DenseStrides();
            Span<int> kept = stackalloc int[Dims6.MaxRank], reduced = stackalloc int[Dims6.MaxRank], r = stackalloc int[Dims6.MaxRank];
            for (int d = 0; d < Dims6.MaxRank; d++)
            {
                bool isReduced = y[d] == 1 && x[d] != 1;
                kept[d] = isReduced ? 0 : dense[d];
                reduced[d] = isReduced ? dense[d] : 0;
                r[d] = isReduced ? x[d] : 1;
            }
            return new(y, new(kept[0], kept[1], kept[2], kept[3], kept[4], kept[5]), new(r[0], r[1], r[2], r[3], r[4], r[5]),
                new(reduced[0], reduced[1], reduced[2], reduced[3], reduced[4], reduced[5]), scale);
        }

        public int Count => checked((int)Y.Count);
    }

    [GpuKernel("reduce_sum_f32")]
    public static void Sum(Index1D i, ArrayView<float> y, ArrayView<float> x, Args p) // y (yShape) x (xShape)
    {
        int start = p.Y.Offset(i, p.XKept);
        float sum = 0f;
        for (int i0 = 0; i0 < p.R.D0; i0++)
            for (int i1 = 0; i1 < p.R.D1; i1++)
                for (int i2 = 0; i2 < p.R.D2; i2++)
                    for (int i3 = 0; i3 < p.R.D3; i3++)
                    {
                        int row = start + i0 * p.XReduced.S0 + i1 * p.XReduced.S1 + i2 * p.XReduced.S2 + i3 * p.XReduced.S3;
                        for (int i4 = 0; i4 < p.R.D4; i4++)
                            for (int i5 = 0; i5 < p.R.D5; i5++)
                                sum += x[row + i4 * p.XReduced.S4 + i5 * p.XReduced.S5];
                    }
        y[i] = p.Scale * sum;
    }
}
