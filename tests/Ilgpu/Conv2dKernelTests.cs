// The CUDA tier's implicit-GEMM conv2d kernels on ILGPU's CPU emulator at small shapes against the double reference.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class Conv2dKernelTests : EmulatorTest
{
    // f32 sums of up to a few hundred products of inputs in [-1, 1), in slab order on the GPU and another order in the
    // reference: the error grows about with √(reduction length), as for the GEMM.
    const double ConvAtol = 1e-5, ConvRtol = 1e-5;

    // Stride 1 and 2, pad 0 and 1, 1×1, 3×3 and 1×3 kernels, odd and even H/W, batch 1 and 2, size-1 dims; partial
    // 64-wide tiles on both GEMM axes (OutC 65, 198 output pixels, 72 taps) and partial 16-deep slabs.
    static readonly ConvShape[] Shapes =
    [
        new(1, 3, 7, 9, 5, 3, 3, 1, 1), new(2, 3, 9, 7, 4, 3, 3, 2, 1), new(2, 5, 5, 5, 65, 1, 1),
        new(1, 2, 6, 5, 3, 3, 3, 2, 0), new(2, 1, 1, 1, 1, 1, 1), new(2, 8, 9, 11, 3, 3, 3, 1, 1),
        new(1, 2, 7, 8, 3, 1, 3, 1, 1),
    ];

    static double Atol(int reduction) => ConvAtol * Math.Sqrt(reduction);

    [Test]
    public void ForwardMatchesTheReference([ValueSource(nameof(Shapes))] ConvShape s, [Values] bool bias)
    {
        double[] x = TestData.Uniform(1, s.InputLength), w = TestData.Uniform(2, s.WeightLength);
        double[] bv = bias ? TestData.Uniform(3, s.OutC) : [], y = new double[s.OutputLength];
        using var xb = Upload(x);
        using var wb = Upload(w);
        using var biasb = Acc.Allocate1D(TestData.ToFloat(bias ? bv : [0]));
        using var yb = Upload(TestData.Uniform(4, s.OutputLength));   // overwritten
        var forward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            Conv2dKernels.Args>(Conv2dKernels.Forward);
        forward(Conv2dKernels.ForwardConfig(s), yb.View, xb.View, wb.View, biasb.View, Conv2dKernels.Args.From(s, bias));
        Conv2dReference.Forward(y, x, w, bv, s);
        Close.Assert(yb.GetAsArray1D(), y, Atol(s.InC * s.KH * s.KW), ConvRtol, $"conv2d {s} bias {bias}");
    }

    [Test]
    public void GradInputMatchesTheReference([ValueSource(nameof(Shapes))] ConvShape s)
    {
        double[] dy = TestData.Uniform(5, s.OutputLength), w = TestData.Uniform(6, s.WeightLength), dx = new double[s.InputLength];
        using var dyb = Upload(dy);
        using var wb = Upload(w);
        using var dxb = Upload(TestData.Uniform(7, s.InputLength));   // overwritten
        var gradInput = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(
            Conv2dKernels.GradInput);
        gradInput(Conv2dKernels.GradInputConfig(s), dxb.View, dyb.View, wb.View, Conv2dKernels.Args.From(s, false));
        Conv2dReference.GradInput(dx, dy, w, s);
        Close.Assert(dxb.GetAsArray1D(), dx, Atol(s.OutC * s.KH * s.KW), ConvRtol, $"conv2d grad input {s}");
    }

    [Test]
    public void GradWeightAndBiasAccumulateLikeTheReference([ValueSource(nameof(Shapes))] ConvShape s, [Values] bool bias)
    {
        double[] dy = TestData.Uniform(8, s.OutputLength), x = TestData.Uniform(9, s.InputLength);
        double[] dw = TestData.Uniform(10, s.WeightLength), dbias = bias ? TestData.Uniform(11, s.OutC) : [];
        using var dyb = Upload(dy);
        using var xb = Upload(x);
        using var dwb = Upload(dw);
        using var dbiasb = Upload(bias ? dbias : [0]);
        var args = Conv2dKernels.Args.From(s, bias);
        var gradWeight = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(
            Conv2dKernels.GradWeight);
        gradWeight(Conv2dKernels.GradWeightConfig(s), dwb.View, dyb.View, xb.View, args);
        if (bias)
        {
            var gradBias = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradBias);
            gradBias(Conv2dKernels.GradBiasConfig(s), dbiasb.View, dyb.View, args);
        }
        Conv2dReference.GradWeight(dw, dbias, dy, x, s);
        int reduction = s.N * s.OutH * s.OutW;
        Close.Assert(dwb.GetAsArray1D(), dw, Atol(reduction), ConvRtol, $"conv2d grad weight {s}");
        if (bias) Close.Assert(dbiasb.GetAsArray1D(), dbias, Atol(reduction), ConvRtol, $"conv2d grad bias {s}");
    }
}
