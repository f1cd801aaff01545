// The CUDA tier's kernels run on ILGPU's CPU emulator at small shapes against the double reference.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Kernels;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class IlgpuKernelTests : EmulatorTest
{
    // f32 accumulation over K ≤ 100 products of inputs in [-1, 1) (one slab order on the GPU, another in the reference).
    // Also for f16/bf16 inputs: rounded to half first, they widen exactly and their products are exact in f32.
    const double GemmAtol = 1e-5, GemmRtol = 1e-5;
    // AdamW: the same f32 formula as the Cpu tier; sqrt.rn and division are correctly rounded in PTX as on the CPU.
    const double AdamWAtol = 1e-7, AdamWRtol = 1e-5;

    [Test]
    public void FillScaleAxpy()
    {
        double[] x = TestData.Uniform(1, 37), y = TestData.Uniform(2, 37);
        using var xb = Upload(x);
        using var yb = Upload(y);
        var axpy = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Axpy);
        axpy((int)yb.Length, yb.View, xb.View, 0.5f);
        Close.Assert(yb.GetAsArray1D(), y.Select((v, i) => (double)(float)(v + 0.5f * (float)x[i])).ToArray(), 0, 1e-7, "axpy");
        var scale = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Scale);
        scale((int)yb.Length, yb.View, xb.View, -3f);
        Close.Assert(yb.GetAsArray1D(), x.Select(v => -3.0 * v).ToArray(), 0, 1e-7, "scale");
        var fill = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ElementwiseKernels.Fill);
        fill(20, yb.View.SubView(10, 20), 7f);
        Assert.That(yb.GetAsArray1D()[10..30], Is.All.EqualTo(7f));
        Assert.That(yb.GetAsArray1D()[9], Is.EqualTo((float)(-3.0 * x[9])));
    }

    [Test]
    public void AdamWMatchesTheReferenceOverSteps([Values(0f, 1e-2f)] float decay, [Values(1f, 0.25f)] float gradScale)
    {
        const int n = 53;
        double[] p = TestData.Uniform(3, n), m = new double[n], v = new double[n];
        using var pb = Upload(p);
        using var gb = Acc.Allocate1D<float>(n);
        using var mb = Acc.Allocate1D<float>(n);
        using var vb = Acc.Allocate1D<float>(n);
        mb.MemSetToZero();
        vb.MemSetToZero();
        var step = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            AdamWConstants>(AdamWKernels.Step);
        for (int t = 1; t <= 3; t++)
        {
            double[] g = TestData.Uniform(10 + t, n);
            gb.CopyFromCPU(TestData.ToFloat(g));
            var s = new AdamWStep(1e-2f, t, WeightDecay: decay, GradScale: gradScale);
            step(n, pb.View, gb.View, mb.View, vb.View, s.Constants());
            AdamWReference.Step(p, g, m, v, s, n);
        }
        Close.Assert(pb.GetAsArray1D(), p, AdamWAtol, AdamWRtol, "adamw param");
        Close.Assert(mb.GetAsArray1D(), m, AdamWAtol, AdamWRtol, "adamw m");
        Close.Assert(vb.GetAsArray1D(), v, AdamWAtol, AdamWRtol, "adamw v");
    }

    // Partial 64×64 tiles and 16-deep slabs, every transpose, batches with a broadcast operand, alpha/beta and bias.
    static readonly GemmShape[] GemmShapes =
    [
        new(1, 1, 1), new(70, 33, 17), new(5, 80, 40, TransA: true), new(64, 64, 16, TransB: true),
        new(17, 65, 31, TransA: true, TransB: true, Alpha: 0.5f, Beta: 2f),
        new(9, 20, 19, Batch: 3), new(9, 20, 19, TransB: true, Batch: 2, StrideB: 0, Beta: 1f),
    ];

    [Test]
    public void GemmMatchesTheReference([ValueSource(nameof(GemmShapes))] GemmShape s, [Values] bool bias)
    {
        double[] a = TestData.Uniform(1, (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K);
        double[] b = TestData.Uniform(2, (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N);
        double[] c = TestData.Uniform(3, (s.Batch - 1) * s.BatchStrideC + (long)s.M * s.N);
        double[] bv = bias ? TestData.Uniform(4, s.N) : [];
        using var ab = Upload(a);
        using var bb = Upload(b);
        using var cb = Upload(c);
        using var biasb = Acc.Allocate1D(TestData.ToFloat(bias ? bv : [0]));
        var gemm = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>(GemmKernels.Tiled);
        gemm(GemmKernels.Config(s), cb.View, ab.View, bb.View, biasb.View, GemmKernels.Args.From(s, bias));
        GemmReference.Gemm(c, a, b, bv, s);
        Close.Assert(cb.GetAsArray1D(), c, GemmAtol * Math.Sqrt(s.K), GemmRtol, $"gemm {s}");
    }

    [Test]
    public void HalfInputGemmMatchesTheReference([ValueSource(nameof(GemmShapes))] GemmShape s, [Values(DType.F16, DType.BF16)] DType inputs,
        [Values] bool bias)
    {
        double[] a = GemmTests.Rounded(TestData.Uniform(1, (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K), inputs);
        double[] b = GemmTests.Rounded(TestData.Uniform(2, (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N), inputs);
        double[] c = TestData.Uniform(3, (s.Batch - 1) * s.BatchStrideC + (long)s.M * s.N);
        double[] bv = bias ? TestData.Uniform(4, s.N) : [];
        using var ab = Acc.Allocate1D(GemmTests.HalfBits(a, inputs));
        using var bb = Acc.Allocate1D(GemmTests.HalfBits(b, inputs));
        using var cb = Upload(c);
        using var biasb = Acc.Allocate1D(TestData.ToFloat(bias ? bv : [0]));
        var args = GemmKernels.Args.From(s, bias);
        if (inputs == DType.F16)
            Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, ArrayView<float>, GemmKernels.Args>(GemmKernels.TiledF16)(
                GemmKernels.Config(s), cb.View, ((ArrayView<ushort>)ab.View).Cast<ILGPU.Half>(), ((ArrayView<ushort>)bb.View).Cast<ILGPU.Half>(), biasb.View, args);
        else
            Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>(GemmKernels.TiledBf16)(
                GemmKernels.Config(s), cb.View, ab.View, bb.View, biasb.View, args);
        GemmReference.Gemm(c, a, b, bv, s);
        Close.Assert(cb.GetAsArray1D(), c, GemmAtol * Math.Sqrt(s.K), GemmRtol, $"gemm {inputs.Name()} {s}");
    }
}
