// The CUDA tier's f32/f16/bf16 casts on the CPU emulator, bit for bit against CastReference.
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Kernels;
using ILGPU;
using ILGPU.Runtime;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class CastKernelTests : EmulatorTest
{

    static readonly ushort[] Every16BitPattern = Enumerable.Range(0, 65536).Select(v => (ushort)v).ToArray();

    /// <summary>Specials, f16 rounding edges (ties, the overflow threshold, the subnormal range) and random bit patterns.</summary>
    static float[] FloatInputs()
    {
        uint[] special =
        [
            0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFA00001, 0x7F800001, 0x00000001, 0x007FFFFF, 0x7F7FFFFF,
            0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000, 0x33000000, 0x33000001, 0x32FFFFFF, 0x387FC000, 0x38800000,
            0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0x3F800001, 0x7F7F8000, 0x7F7FFFFF, 0x33800000, 0x33C00000,
        ];
        var rng = new Random(7);
        var random = Enumerable.Range(0, 4000).Select(_ => (uint)rng.NextInt64(0, 1L << 32));
        return special.Concat(random).Select(BitConverter.UInt32BitsToSingle).ToArray();
    }

    static uint[] Bits(float[] values) => values.Select(BitConverter.SingleToUInt32Bits).ToArray();

    [Test]
    public void NarrowingFromF32MatchesTheReferenceBitForBit()
    {
        float[] x = FloatInputs();
        using var src = Acc.Allocate1D(x);
        using var dst = Acc.Allocate1D<ushort>(x.Length);
        var toHalf = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToF16);
        toHalf(x.Length, dst.View, src.View);
        Assert.That(dst.GetAsArray1D(), Is.EqualTo(x.Select(HalfPrecision.FloatToHalf).ToArray()), "f32 -> f16");
        var toBf16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToBf16);
        toBf16(x.Length, dst.View, src.View);
        Assert.That(dst.GetAsArray1D(), Is.EqualTo(x.Select(HalfPrecision.FloatToBFloat16).ToArray()), "f32 -> bf16");
    }

    [Test]
    public void EverySixteenBitPatternConvertsLikeTheReference()
    {
        var x = Every16BitPattern;
        using var src = Acc.Allocate1D(x);
        using var wide = Acc.Allocate1D<float>(x.Length);
        using var narrow = Acc.Allocate1D<ushort>(x.Length);
        var fromHalf = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.F16ToF32);
        fromHalf(x.Length, wide.View, src.View);
        Assert.That(Bits(wide.GetAsArray1D()), Is.EqualTo(Bits(x.Select(HalfPrecision.HalfToFloat).ToArray())), "f16 -> f32");
        var fromBf16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.Bf16ToF32);
        fromBf16(x.Length, wide.View, src.View);
        Assert.That(Bits(wide.GetAsArray1D()), Is.EqualTo(Bits(x.Select(HalfPrecision.BFloat16ToFloat).ToArray())), "bf16 -> f32");

        var halfToBf16 = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.F16ToBf16);
        halfToBf16(x.Length, narrow.View, src.View);
        Assert.That(narrow.GetAsArray1D(), Is.EqualTo(x.Select(h => (ushort)HalfPrecision.Convert(h, DreamBooth.Kernels.DType.F16,
            DreamBooth.Kernels.DType.BF16)).ToArray()), "f16 -> bf16");
        var bf16ToHalf = Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.Bf16ToF16);
        bf16ToHalf(x.Length, narrow.View, src.View);
        Assert.That(narrow.GetAsArray1D(), Is.EqualTo(x.Select(h => (ushort)HalfPrecision.Convert(h, DreamBooth.Kernels.DType.BF16,
            DreamBooth.Kernels.DType.F16)).ToArray()), "bf16 -> f16");
    }
}
