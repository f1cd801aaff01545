// The CUDA tier's GroupNorm (alone and with SiLU), LayerNorm and Softmax kernels run on ILGPU's CPU emulator against the double reference.
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class NormKernelTests : EmulatorTest
{
    // f32 one-pass statistics (shifted sums of d and d²) over ≤ 1200 elements with |x| ≤ 4; y, dx are O(1)·xhat.
    const double NormAtol = 3e-5, NormRtol = 3e-5;
    // dgamma/dbeta: f32 sums of ≤ 600 products of O(1) terms, added to an O(1) starting value.
    const double ParamAtol = 1e-4, ParamRtol = 1e-5;
    // Softmax: exp of float differences x − max (|x| ≤ 80), one rounding in x − max of up to ulp(160)/2 for terms that matter.
    const double SoftmaxAtol = 1e-7, SoftmaxRtol = 2e-5;
    const float Eps = 1e-5f;

    static double[] Rounded(float[] values) => Array.ConvertAll(values, v => (double)v);

    /// <summary>Inputs around an offset, so the statistics' shift and cancellation are exercised.</summary>
    static double[] Offset(int seed, long length, double offset) =>
        TestData.Uniform(seed, length, 2.0).Select(v => (double)(float)(v + offset)).ToArray();

    // (N, C, HW, G): partial warps, G = 1 and G = C, HW = 1, groups of one element, groups longer than 256 threads.
    static readonly int[][] GroupNormShapes = [[2, 6, 5, 3], [1, 4, 1, 4], [2, 3, 70, 1], [1, 8, 150, 2], [3, 1, 1, 1]];

    [Test]
    public void GroupNormForwardAndBackwardMatchTheReference([ValueSource(nameof(GroupNormShapes))] int[] shape, [Values] bool silu)
    {
        int n = shape[0], c = shape[1], hw = shape[2], groups = shape[3];
        int size = n * c * hw;
        double[] x = Offset(1, size, 1.5), gamma = TestData.Uniform(2, c), beta = TestData.Uniform(3, c), dy = TestData.Uniform(4, size);
        double[] dgamma = TestData.Uniform(5, c), dbeta = TestData.Uniform(6, c);
        var args = GroupNormKernels.Args.From(n, c, hw, groups, Eps, silu);
        using var xb = Upload(x);
        using var gb = Upload(gamma);
        using var bb = Upload(beta);
        using var yb = Acc.Allocate1D<float>(size);
        using var mb = Acc.Allocate1D<float>(n * groups);
        using var rb = Acc.Allocate1D<float>(n * groups);
        var forward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.Forward);
        forward(GroupNormKernels.Config(args), yb.View, mb.View, rb.View, xb.View, gb.View, bb.View, args);

        double[] y = new double[size], mean = new double[n * groups], rstd = new double[n * groups];
        GroupNormReference.Forward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, Eps, silu);
        string what = $"group_norm{(silu ? "+silu" : "")} (N={n}, C={c}, HW={hw}, G={groups})";
        Close.Assert(yb.GetAsArray1D(), y, NormAtol, NormRtol, what + " y");
        Close.Assert(mb.GetAsArray1D(), mean, NormAtol, NormRtol, what + " mean");
        Close.Assert(rb.GetAsArray1D(), rstd, NormAtol, NormRtol, what + " rstd");

        // Backward from the kernel's saved statistics, which the oracle is given too.
        double[] savedMean = Rounded(mb.GetAsArray1D()), savedRstd = Rounded(rb.GetAsArray1D());
        using var dyb = Upload(dy);
        using var dxb = Acc.Allocate1D<float>(size);
        using var dgb = Upload(dgamma);
        using var dbb = Upload(dbeta);
        var backwardDx = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardDx);
        var backwardParams = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardParams);
        backwardDx(GroupNormKernels.Config(args), dxb.View, dyb.View, xb.View, mb.View, rb.View, gb.View, bb.View, args);
        backwardParams(GroupNormKernels.ParamConfig(args), dgb.View, dbb.View, dyb.View, xb.View, mb.View, rb.View, gb.View, bb.View, args);

        double[] dx = new double[size];
        GroupNormReference.Backward(dx, dgamma, dbeta, dy, x, savedMean, savedRstd, gamma, beta, n, c, hw, groups, silu);
        Close.Assert(dxb.GetAsArray1D(), dx, NormAtol, NormRtol, what + " dx");
        Close.Assert(dgb.GetAsArray1D(), dgamma, ParamAtol, ParamRtol, what + " dgamma (accumulated)");
        Close.Assert(dbb.GetAsArray1D(), dbeta, ParamAtol, ParamRtol, what + " dbeta (accumulated)");
    }

    // (rows, dim): rows of one element, partial warps and partial 32-column tiles, rows longer than 256 threads,
    // more rows than the 8 row slices of the dgamma/dbeta tile.
    static readonly int[][] LayerNormShapes = [[3, 1], [5, 37], [2, 300], [10, 10], [1, 64]];

    [Test]
    public void LayerNormForwardAndBackwardMatchTheReference([ValueSource(nameof(LayerNormShapes))] int[] shape)
    {
        int rows = shape[0], dim = shape[1], size = rows * dim;
        double[] x = Offset(11, size, -2.0), gamma = TestData.Uniform(12, dim), beta = TestData.Uniform(13, dim), dy = TestData.Uniform(14, size);
        double[] dgamma = TestData.Uniform(15, dim), dbeta = TestData.Uniform(16, dim);
        var args = LayerNormKernels.Args.From(rows, dim, Eps);
        using var xb = Upload(x);
        using var gb = Upload(gamma);
        using var bb = Upload(beta);
        using var yb = Acc.Allocate1D<float>(size);
        using var mb = Acc.Allocate1D<float>(rows);
        using var rb = Acc.Allocate1D<float>(rows);
        var forward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.Forward);
        forward(LayerNormKernels.Config(args), yb.View, mb.View, rb.View, xb.View, gb.View, bb.View, args);

        double[] y = new double[size], mean = new double[rows], rstd = new double[rows];
        LayerNormReference.Forward(y, mean, rstd, x, gamma, beta, rows, dim, Eps);
        string what = $"layer_norm (rows={rows}, dim={dim})";
        Close.Assert(yb.GetAsArray1D(), y, NormAtol, NormRtol, what + " y");
        Close.Assert(mb.GetAsArray1D(), mean, NormAtol, NormRtol, what + " mean");
        Close.Assert(rb.GetAsArray1D(), rstd, NormAtol, NormRtol, what + " rstd");

        double[] savedMean = Rounded(mb.GetAsArray1D()), savedRstd = Rounded(rb.GetAsArray1D());
        using var dyb = Upload(dy);
        using var dxb = Acc.Allocate1D<float>(size);
        using var dgb = Upload(dgamma);
        using var dbb = Upload(dbeta);
        var backwardDx = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardDx);
        var backwardParams = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardParams);
        backwardDx(LayerNormKernels.Config(args), dxb.View, dyb.View, xb.View, mb.View, rb.View, gb.View, args);
        backwardParams(LayerNormKernels.ParamConfig(args), dgb.View, dbb.View, dyb.View, xb.View, mb.View, rb.View, args);

        double[] dx = new double[size];
        LayerNormReference.Backward(dx, dgamma, dbeta, dy, x, savedMean, savedRstd, gamma, rows, dim);
        Close.Assert(dxb.GetAsArray1D(), dx, NormAtol, NormRtol, what + " dx");
        Close.Assert(dgb.GetAsArray1D(), dgamma, ParamAtol, ParamRtol, what + " dgamma (accumulated)");
        Close.Assert(dbb.GetAsArray1D(), dbeta, ParamAtol, ParamRtol, what + " dbeta (accumulated)");
    }

    // (rows, cols): rows of one element, partial warps, rows longer than 256 threads; inputs up to ±80.
    static readonly int[][] SoftmaxShapes = [[3, 1], [4, 33], [2, 300]];

    [Test]
    public void SoftmaxForwardAndBackwardMatchTheReference([ValueSource(nameof(SoftmaxShapes))] int[] shape, [Values(1.0, 80.0)] double scale)
    {
        int rows = shape[0], cols = shape[1], size = rows * cols;
        double[] x = TestData.Uniform(21, size, scale), dy = TestData.Uniform(22, size);
        var args = SoftmaxKernels.Args.From(rows, cols);
        using var xb = Upload(x);
        using var yb = Acc.Allocate1D<float>(size);
        var forward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Forward);
        forward(SoftmaxKernels.Config(args), yb.View, xb.View, args);
        double[] y = new double[size];
        SoftmaxReference.Forward(y, x, rows, cols);
        string what = $"softmax (rows={rows}, cols={cols}, |x| ≤ {scale})";
        Close.Assert(yb.GetAsArray1D(), y, SoftmaxAtol, SoftmaxRtol, what + " y");

        double[] savedY = Rounded(yb.GetAsArray1D());
        using var dyb = Upload(dy);
        using var dxb = Acc.Allocate1D<float>(size);
        var backward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Backward);
        backward(SoftmaxKernels.Config(args), dxb.View, dyb.View, yb.View, args);
        double[] dx = new double[size];
        SoftmaxReference.Backward(dx, dy, savedY, rows, cols);
        Close.Assert(dxb.GetAsArray1D(), dx, SoftmaxAtol, SoftmaxRtol, what + " dx");
    }
}
