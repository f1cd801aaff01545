// The CUDA tier's Philox4x32-10 draws on the CPU emulator: uniform bit-identical to PhiloxReference, normal within f32 error.
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class PhiloxKernelTests : EmulatorTest
{
    // Normals: f32 log/sqrt/cos/sin of exact inputs against a double computation rounded once (|n| ≤ 5.8).
    const double NormalAtol = 2e-6, NormalRtol = 2e-6;

    // n not a multiple of 4 (1001 draws reach the −ln u1 series branch about 30 times), a single element, a 64-bit seed, and an offset whose counter carries into the high word.
    static readonly (ulong Seed, ulong Offset, int N)[] Streams =
    [
        (0, 0, 1), (42, 0, 1001), (0x123456789ABCDEF0, 7, 34), (5, 0xFFFFFFFFFFFFFFFE, 21), (9, 0xFFFFFFFE, 16),
    ];

    [Test]
    public void UniformIsBitIdenticalAndNormalIsCloseToTheReference([ValueSource(nameof(Streams))] (ulong Seed, ulong Offset, int N) s)
    {
        using var yb = Acc.Allocate1D<float>(s.N);
        var p = PhiloxKernels.Args.From(s.Seed, s.Offset, s.N);
        var uniform = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Uniform);
        uniform(p.Blocks, yb.View, p);
        var expected = new double[s.N];
        PhiloxReference.Uniform(expected, s.Seed, s.Offset);
        Assert.That(yb.GetAsArray1D(), Is.EqualTo(expected.Select(v => (float)v).ToArray()), "uniform");

        var normal = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Normal);
        normal(p.Blocks, yb.View, p);
        PhiloxReference.Normal(expected, s.Seed, s.Offset);
        Close.Assert(yb.GetAsArray1D(), expected, NormalAtol, NormalRtol, "normal");
    }
}
