// The CUDA tier's GEGLU, MSE loss and SumSquares on the CPU emulator against GegluReference, MseLossReference, ReduceReference.
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class GegluMseKernelTests : EmulatorTest
{
    // GEGLU: one product on top of the f32 erf-based GELU (≤ 4e-7 relative, see UnaryKernelTests).
    const double GegluAtol = 1e-6, GegluRtol = 2e-6;
    // The reductions: f32 sums of ≤ 5000 non-negative terms in a fixed tree, each thread's run first (relative ≈ 1e-6).
    const double SumRtol = 1e-5;

    [Test]
    public void GegluForwardAndBackwardMatchTheReference([Values(1, 37)] int dim)
    {
        const int rows = 3;
        double[] x = TestData.Uniform(1, rows * 2 * dim, 4), dy = TestData.Uniform(2, rows * dim);
        using var xb = Acc.Allocate1D(TestData.ToFloat(x));
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var yb = Acc.Allocate1D<float>(rows * dim);
        using var dxb = Acc.Allocate1D<float>(rows * 2 * dim);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, GegluKernels.Args>(GegluKernels.Forward);
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            GegluKernels.Args>(GegluKernels.Backward);
        forward(rows * dim, yb.View, xb.View, GegluKernels.Args.From(rows, dim));
        backward(rows * dim, dxb.View, dyb.View, xb.View, GegluKernels.Args.From(rows, dim));
        var y = new double[rows * dim];
        var dx = new double[rows * 2 * dim];
        GegluReference.Forward(y, x, rows, dim);
        GegluReference.Backward(dx, dy, x, rows, dim);
        Close.Assert(yb.GetAsArray1D(), y, GegluAtol, GegluRtol, "geglu forward");
        Close.Assert(dxb.GetAsArray1D(), dx, GegluAtol, GegluRtol, "geglu backward");
    }

    /// <summary>Runs both levels; n = 1, a partial group, and several level-1 groups with a partial last one.</summary>
    float Reduce(float[] a, float[] b, MseLossKernels.Args p)
    {
        using var ab = Acc.Allocate1D(a);
        using var bb = Acc.Allocate1D(b);
        using var partials = Acc.Allocate1D<float>(MseLossKernels.Groups(a.Length));
        using var result = Acc.Allocate1D<float>(1);
        var partial = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Partial);
        var finish = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Finish);
        partial(MseLossKernels.PartialConfig(a.Length), partials.View, ab.View, bb.View, p);
        finish(MseLossKernels.FinishConfig, result.View, partials.View, p);
        return result.GetAsArray1D()[0];
    }

    [Test]
    public void MseLossAndSumSquaresMatchTheReference([Values(1, 5000)] int n)
    {
        double[] a = TestData.Uniform(1, n), b = TestData.Uniform(2, n);
        float mse = Reduce(TestData.ToFloat(a), TestData.ToFloat(b), MseLossKernels.Args.Mse(n));
        Close.Assert([mse], [MseLossReference.Forward(a, b)], 0, SumRtol, $"mse n={n}");
        float squares = Reduce(TestData.ToFloat(a), [0f], MseLossKernels.Args.SumSquares(n));
        Close.Assert([squares], [ReduceReference.SumSquares(a)], 0, SumRtol, $"sum squares n={n}");
        Assert.That(Reduce(TestData.ToFloat(a), TestData.ToFloat(b), MseLossKernels.Args.Mse(n)), Is.EqualTo(mse), "run to run");
    }

    [Test]
    public void MseLossBackwardMatchesTheReference()
    {
        const int n = 45;
        double[] a = TestData.Uniform(1, n), b = TestData.Uniform(2, n);
        using var ab = Acc.Allocate1D(TestData.ToFloat(a));
        using var bb = Acc.Allocate1D(TestData.ToFloat(b));
        using var dab = Acc.Allocate1D<float>(n);
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            MseLossKernels.BackwardArgs>(MseLossKernels.Backward);
        backward(n, dab.View, ab.View, bb.View, MseLossKernels.BackwardArgs.From(0.75f, n));
        var da = new double[n];
        MseLossReference.Backward(da, a, b, 0.75);
        Close.Assert(dab.GetAsArray1D(), da, 1e-8, 1e-6, "mse backward");
    }
}
