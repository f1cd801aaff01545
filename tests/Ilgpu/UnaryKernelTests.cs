// The CUDA tier's activations and their backward on the CPU emulator against UnaryReference, tails included.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class UnaryKernelTests : EmulatorTest
{
    // f32 evaluation of exp/σ and the erf fits (1e-9) against double: a few ulp relative, measured ≤ 4e-7 for Φ; the
    // small atol covers values near the zeros of f and f' (cancellation in 1 − σ and the derivative's sum).
    const double Atol = 1e-6, Rtol = 2e-6;

    /// <summary>Uniform values in [−9, 9) plus the far tails and the erf fit's switch points (|x/√2| = ½).</summary>
    static double[] Inputs()
    {
        double[] edges = [-30, -20, -12, -0.70710678f, 0.70710678f, -0.7071068f, 0, 12, 25];
        return TestData.Uniform(5, 301, 9).Concat(edges.Select(v => (double)(float)v)).ToArray();
    }

    [Test]
    public void ForwardAndBackwardMatchTheReference([Values] UnaryOp op)
    {
        double[] x = Inputs(), dy = TestData.Uniform(6, x.Length, 2);
        using var xb = Acc.Allocate1D(TestData.ToFloat(x));
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var yb = Acc.Allocate1D<float>(x.Length);
        using var dxb = Acc.Allocate1D<float>(x.Length);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Forward);
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            UnaryKernels.Args>(UnaryKernels.Backward);
        forward(x.Length, yb.View, xb.View, UnaryKernels.Args.From(op));
        backward(x.Length, dxb.View, dyb.View, xb.View, UnaryKernels.Args.From(op));

        var y = new double[x.Length];
        var dx = new double[x.Length];
        UnaryReference.Forward(op, y, x);
        UnaryReference.Backward(op, dx, dy, x);
        Close.Assert(yb.GetAsArray1D(), y, Atol, Rtol, $"{op} forward");
        Close.Assert(dxb.GetAsArray1D(), dx, Atol, Rtol, $"{op} backward");
    }

    [Test]
    public void GeluKeepsRelativeAccuracyInTheLeftTail()
    {
        double[] x = [-3, -5, -7, -9];
        using var xb = Acc.Allocate1D(TestData.ToFloat(x));
        using var yb = Acc.Allocate1D<float>(x.Length);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Forward);
        forward(x.Length, yb.View, xb.View, UnaryKernels.Args.From(UnaryOp.Gelu));
        var y = new double[x.Length];
        UnaryReference.Forward(UnaryOp.Gelu, y, x);
        Close.Assert(yb.GetAsArray1D(), y, 0, 2e-6, "gelu tail (x·Φ(x) down to 1e-18)");
    }
}
