// Cast between f32, f16 and bf16 on every backend: exhaustive 16-bit sweeps, rounding ties, NaN/Inf, subnormals.
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class CastTests(string backend) : BackendTest(backend)
{
    // Casts are exact functions of the bits: every comparison is bit-for-bit.

    static readonly uint[] AllSixteenBit = Enumerable.Range(0, 65536).Select(i => (uint)i).ToArray();

    /// <summary>Casts the given element bits (f32 in a uint, f16/bf16 in the low 16) on the backend.</summary>
    uint[] CastBits(uint[] bits, DType from, DType to)
    {
        var src = Zeros(bits.Length, from);
        if (from == DType.F32) Backend.Upload<uint>(src, bits);
        else Backend.Upload<ushort>(src, bits.Select(b => (ushort)b).ToArray());
        var dst = Zeros(bits.Length, to);
        Backend.Cast(dst, src);
        if (to == DType.F32)
        {
            var result = new uint[bits.Length];
            Backend.Download<uint>(result, dst);
            return result;
        }
        var halves = new ushort[bits.Length];
        Backend.Download<ushort>(halves, dst);
        return halves.Select(h => (uint)h).ToArray();
    }

    static uint[] RandomFloatBits(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (uint)rng.NextInt64(0, 1L << 32)).ToArray();
    }

    /// <summary>Random f32 bits with exponents near the f16 range (so rounding and subnormal paths dominate), plus
    /// values one ulp either side of every f16 and bf16 rounding boundary.</summary>
    static uint[] InterestingFloatBits()
    {
        var rng = new Random(11);
        var list = new List<uint>();
        for (int i = 0; i < 20000; i++)
            list.Add((uint)rng.Next(0, 2) << 31 | (uint)rng.Next(97, 146) << 23 | (uint)rng.Next(0, 1 << 23));
        for (uint h = 0; h < 0x7C00; h += 7)
        {
            // The f32 exactly between f16 h and h + 1, and its neighbours.
            uint mid = BitConverter.SingleToUInt32Bits((float)(((double)HalfPrecision.HalfToFloat((ushort)h)
                                                              + HalfPrecision.HalfToFloat((ushort)(h + 1))) / 2));
            list.AddRange([mid - 1, mid, mid + 1, mid | 0x80000000]);
        }
        for (uint b = 0; b < 0x7F80; b += 5) list.AddRange([b << 16 | 0x7FFF, b << 16 | 0x8000, b << 16 | 0x8001]);
        list.AddRange([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF,
            0x7F7FFFFF, 0x00000001, 0x807FFFFF]);
        // Specials and f16 edges: a NaN payload, around the overflow threshold (65504, 65520), around 2^-25 and 2^-24, the
        // smallest normal, ties at 1 + k·2^-11.
        list.AddRange([0xFFA00001, 0x007FFFFF, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000, 0x33000000, 0x33000001, 0x32FFFFFF,
            0x387FC000, 0x38800000, 0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0x3F800001, 0x7F7F8000, 0x33800000, 0x33C00000]);
        return list.ToArray();
    }

    static uint ReferenceBits(uint bits, DType from, DType to) => HalfPrecision.Convert(bits, from, to);

    [TestCase(DType.F16, DType.F32)]
    [TestCase(DType.BF16, DType.F32)]
    [TestCase(DType.F16, DType.BF16)]
    [TestCase(DType.BF16, DType.F16)]
    [TestCase(DType.F16, DType.F16)]
    [TestCase(DType.BF16, DType.BF16)]
    public void EverySixteenBitPatternMatchesReference(DType from, DType to)
    {
        var expected = AllSixteenBit.Select(b => ReferenceBits(b, from, to)).ToArray();
        Assert.That(CastBits(AllSixteenBit, from, to), Is.EqualTo(expected));
    }

    [TestCase(DType.F32, DType.F16)]
    [TestCase(DType.F32, DType.BF16)]
    [TestCase(DType.F32, DType.F32)]
    public void FloatBitPatternsMatchReference(DType from, DType to)
    {
        var bits = InterestingFloatBits().Concat(RandomFloatBits(50_001, 12)).ToArray();
        var expected = bits.Select(b => ReferenceBits(b, from, to)).ToArray();
        Assert.That(CastBits(bits, from, to), Is.EqualTo(expected));
    }

    [Test]
    public void HalfRoundTripIsExact()
    {
        // f16 → f32 → f16 returns every pattern; a NaN comes back quiet (0x200 set) with its payload.
        var back = CastBits(CastBits(AllSixteenBit, DType.F16, DType.F32), DType.F32, DType.F16);
        var expected = AllSixteenBit.Select(h => (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0 ? h | 0x200 : h).ToArray();
        Assert.That(back, Is.EqualTo(expected));
    }

    [TestCase(65504f, 0x7BFFu)]                     // largest half
    [TestCase(65519.996f, 0x7BFFu)]                 // just under the Inf rounding boundary
    [TestCase(65520f, 0x7C00u)]                     // halfway to 65536: ties to even → Inf
    [TestCase(-1e9f, 0xFC00u)]
    [TestCase(5.9604645e-8f, 0x0001u)]              // 2^-24, smallest subnormal
    [TestCase(2.9802322e-8f, 0x0000u)]              // 2^-25: tie between 0 and 2^-24 → even (0)
    [TestCase(2.9802326e-8f, 0x0001u)]              // one f32 ulp above 2^-25
    [TestCase(8.940697e-8f, 0x0002u)]               // 3·2^-25: 1.5 units, tie → 2
    [TestCase(6.1035156e-5f, 0x0400u)]              // 2^-14, smallest normal
    [TestCase(6.1031434e-5f, 0x0400u)]              // largest subnormal + half a unit + ε rounds up into the normals
    [TestCase(1.00048828125f, 0x3C00u)]             // 1 + 2^-11: tie, even mantissa → down
    [TestCase(1.00146484375f, 0x3C02u)]             // 1 + 3·2^-11: tie, odd mantissa → up
    [TestCase(-0f, 0x8000u)]
    [TestCase(1e-45f, 0x0000u)]                     // f32 subnormal → 0
    public void HalfEdgeCases(float value, uint expected)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        Assert.That(CastBits([bits], DType.F32, DType.F16)[0], Is.EqualTo(expected), $"{value:R}");
        Assert.That(BitConverter.HalfToUInt16Bits((Half)value), Is.EqualTo((ushort)expected), "System.Half agrees");
    }

    [TestCase(0x3F808000u, 0x3F80u)]                // tie, kept bit even → down
    [TestCase(0x3F818000u, 0x3F82u)]                // tie, kept bit odd → up
    [TestCase(0x3F808001u, 0x3F81u)]                // above the tie → up
    [TestCase(0x3F807FFFu, 0x3F80u)]                // below the tie → down
    [TestCase(0x7F7FFFFFu, 0x7F80u)]                // largest f32 rounds to Inf
    [TestCase(0xFF7F8000u, 0xFF80u)]                // tie with odd kept bit at the top → -Inf
    [TestCase(0x7F800000u, 0x7F80u)]                // Inf
    [TestCase(0x7F800001u, 0x7FC0u)]                // signalling NaN → quiet NaN (not Inf)
    [TestCase(0xFFC12345u, 0xFFC1u)]                // NaN keeps sign and top payload
    [TestCase(0x00018000u, 0x0002u)]                // subnormal tie, odd → up
    public void BFloat16EdgeCases(uint bits, uint expected) =>
        Assert.That(CastBits([bits], DType.F32, DType.BF16)[0], Is.EqualTo(expected), $"0x{bits:X8}");

    [Test]
    public void NaNsStayQuietNaNs()
    {
        uint[] halfNaNs = [0x7C01, 0x7E00, 0xFD55, 0x7FFF];
        foreach (uint f in CastBits(halfNaNs, DType.F16, DType.F32))
            Assert.That((f & 0x7FC00000) == 0x7FC00000, $"0x{f:X8} is a quiet NaN");
        foreach (uint b in CastBits(halfNaNs, DType.F16, DType.BF16))
            Assert.That((b & 0x7FC0) == 0x7FC0, $"0x{b:X4} is a quiet bf16 NaN");
        uint[] floatNaNs = [0x7F800001, 0xFFBFFFFF, 0x7FC00000];
        foreach (uint h in CastBits(floatNaNs, DType.F32, DType.F16))
            Assert.That((h & 0x7E00) == 0x7E00, $"0x{h:X4} is a quiet f16 NaN");
        // Same-type casts copy the bits, even a signalling NaN.
        Assert.That(CastBits(floatNaNs, DType.F32, DType.F32), Is.EqualTo(floatNaNs));
    }

    [Test, Category(HostScale)]   // the cpu tier's split over cores; the other cases launch the CUDA kernels over 65536+
    public void LargeCastSplitsOverCores()
    {
        var bits = RandomFloatBits(1_000_003, 13);
        var halves = CastBits(bits, DType.F32, DType.F16);
        var floats = CastBits(halves, DType.F16, DType.F32);
        for (int i = 0; i < bits.Length; i += 997)
        {
            Assert.That(halves[i], Is.EqualTo(ReferenceBits(bits[i], DType.F32, DType.F16)), $"f16 {i}");
            Assert.That(floats[i], Is.EqualTo(ReferenceBits(halves[i], DType.F16, DType.F32)), $"f32 {i}");
        }
        Assert.That(halves[^1], Is.EqualTo(ReferenceBits(bits[^1], DType.F32, DType.F16)), "tail");
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.Cast(Zeros(5, DType.F16), Zeros(6)), Throws.ArgumentException.With.Message.Contains("cast"));
            Assert.That(() => Backend.Cast(Zeros(5, DType.I32), Zeros(5)), Throws.ArgumentException.With.Message.Contains("cast"));
            Assert.That(() => Backend.Cast(Zeros(5), Zeros(5, DType.I32)), Throws.ArgumentException.With.Message.Contains("cast"));
        });
    }
}

/// <summary>The reference conversions against .NET's System.Half, an independent implementation of IEEE binary16.</summary>
[TestFixture]
public class CastReferenceOracle
{
    [Test]
    public void HalfToFloatMatchesSystemHalf()
    {
        for (int h = 0; h < 65536; h++)
        {
            uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf((ushort)h));
            uint actual = BitConverter.SingleToUInt32Bits(HalfPrecision.HalfToFloat((ushort)h));
            if (actual != expected) Assert.Fail($"f16 0x{h:X4}: 0x{actual:X8}, System.Half 0x{expected:X8}");
        }
    }

    [Test]
    public void FloatToHalfMatchesSystemHalf()
    {
        var rng = new Random(21);
        for (int i = 0; i < 2_000_000; i++)
        {
            // Half the draws anywhere, half with exponents around the f16 range.
            uint bits = i % 2 == 0 ? (uint)rng.NextInt64(0, 1L << 32)
                                   : (uint)rng.Next(0, 2) << 31 | (uint)rng.Next(96, 145) << 23 | (uint)rng.Next(0, 1 << 23);
            float f = BitConverter.UInt32BitsToSingle(bits);
            ushort expected = BitConverter.HalfToUInt16Bits((Half)f);
            ushort actual = HalfPrecision.FloatToHalf(f);
            if (actual != expected) Assert.Fail($"f32 0x{bits:X8}: 0x{actual:X4}, System.Half 0x{expected:X4}");
        }
    }

    [Test]
    public void BFloat16IsTheNearestEvenOfTheTopHalf()
    {
        // Independent oracle: choose between truncation and truncation + 1 by comparing distances in double.
        var rng = new Random(22);
        for (int i = 0; i < 200_000; i++)
        {
            uint bits = (uint)rng.NextInt64(0, 1L << 32) & 0x7F7FFFFF;    // finite, positive
            double x = BitConverter.UInt32BitsToSingle(bits);
            uint down = bits >> 16, up = down + 1;
            double dDown = x - BitConverter.UInt32BitsToSingle(down << 16);
            double dUp = up == 0x7F80 ? double.PositiveInfinity : BitConverter.UInt32BitsToSingle(up << 16) - x;
            if (up == 0x7F80 && x >= BitConverter.UInt32BitsToSingle(0x7F7F8000)) dUp = 0;   // at or past the midpoint to 2^128: Inf
            uint expected = dDown < dUp || (dDown == dUp && (down & 1) == 0) ? down : up;
            Assert.That((uint)HalfPrecision.FloatToBFloat16((float)x), Is.EqualTo(expected), $"0x{bits:X8}");
        }
    }
}
