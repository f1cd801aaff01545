// The CUDA tier's nearest 2× upsampling and embedding gather/scatter on the CPU emulator against the reference.
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class UpsampleEmbeddingKernelTests : EmulatorTest
{
    // Forward copies are exact; the backward sums 4 (upsample) or ≤ 3 (repeated ids) f32 values of size ≤ 1.
    const double SumAtol = 1e-6;

    [Test]
    public void UpsampleForwardAndBackwardMatchTheReference([Values(1, 3)] int planes, [Values(1, 5)] int h, [Values(1, 7)] int w)
    {
        double[] x = TestData.Uniform(1, planes * h * w), dy = TestData.Uniform(2, 4 * planes * h * w);
        using var xb = Acc.Allocate1D(TestData.ToFloat(x));
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var yb = Acc.Allocate1D<float>(dy.Length);
        using var dxb = Acc.Allocate1D<float>(x.Length);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Forward);
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Backward);
        forward(dy.Length, yb.View, xb.View, UpsampleKernels.Args.From(planes, h, w));
        backward(x.Length, dxb.View, dyb.View, UpsampleKernels.Args.From(planes, h, w));
        var y = new double[dy.Length];
        var dx = new double[x.Length];
        UpsampleReference.Forward(y, x, planes, h, w);
        UpsampleReference.Backward(dx, dy, planes, h, w);
        Close.Assert(yb.GetAsArray1D(), y, 0, 0, "upsample forward");
        Close.Assert(dxb.GetAsArray1D(), dx, SumAtol, 0, "upsample backward");
    }

    [Test]
    public void EmbeddingGatherAndScatterAddMatchTheReference([Values(1, 33)] int dim)
    {
        const int vocab = 6;
        int[] ids = [4, 0, 4, 5, 2, 4, 0];                                   // repeated ids, an unused row (1, 3)
        int count = ids.Length;
        double[] table = TestData.Uniform(1, vocab * dim), dy = TestData.Uniform(2, count * dim);
        double[] dtable = TestData.Uniform(3, vocab * dim);                  // the backward accumulates into it
        using var tableb = Acc.Allocate1D(TestData.ToFloat(table));
        using var idsb = Acc.Allocate1D(ids);
        using var dyb = Acc.Allocate1D(TestData.ToFloat(dy));
        using var yb = Acc.Allocate1D<float>(count * dim);
        using var dtableb = Acc.Allocate1D(TestData.ToFloat(dtable));
        var p = EmbeddingKernels.Args.From(count, dim, vocab);
        var forward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(
            EmbeddingKernels.Forward);
        var backward = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(
            EmbeddingKernels.Backward);
        forward(count * dim, yb.View, tableb.View, idsb.View, p);
        backward(dim, dtableb.View, dyb.View, idsb.View, p);
        var y = new double[count * dim];
        EmbeddingReference.Forward(y, table, ids, count, dim);
        EmbeddingReference.Backward(dtable, dy, ids, count, dim);
        Close.Assert(yb.GetAsArray1D(), y, 0, 0, "embedding forward");
        Close.Assert(dtableb.GetAsArray1D(), dtable, SumAtol, 0, "embedding backward");
    }
}
