// Conversions between f32, f16 and bf16 with explicit bit manipulation: round to nearest even, NaN stays NaN. Shared by
// every tier, safetensors and the tests.
namespace DreamBooth.Kernels;

/// <summary>
/// Bit layouts: f32 = sign(1) exponent(8, bias 127) mantissa(23); f16 = sign(1) exponent(5, bias 15) mantissa(10);
/// bf16 = the top 16 bits of an f32. Narrowing rounds to nearest, ties to even; f16 overflows to ±Inf and keeps
/// subnormals (down to 2^-24); a NaN stays a NaN with its sign and top payload bits, made quiet. Widening is exact
/// (NaNs made quiet). f16 ↔ bf16 goes through f32, which holds both exactly, so it rounds once. Casting to the
/// same dtype copies the bits unchanged.
/// </summary>
public static class HalfPrecision
{
    public static ushort FloatToHalf(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value);
        uint sign = (x >> 16) & 0x8000;
        uint exponent = (x >> 23) & 0xFF;
        uint mantissa = x & 0x7FFFFF;

        if (exponent == 0xFF)                                    // Inf stays Inf; NaN keeps its top payload, made quiet
            return (ushort)(sign | 0x7C00 | (mantissa != 0 ? 0x200 | (mantissa >> 13) : 0));

        int e = (int)exponent - 127;                             // |value| = 1.mantissa · 2^e
        if (e > 15) return (ushort)(sign | 0x7C00);              // ≥ 2^16: past the largest half (65504) → Inf
        if (e < -25) return (ushort)sign;                        // < 2^-25, under half the smallest subnormal → ±0
                                                                 // (f32 zeros and subnormals land here too)
        // Keep the top bits of the 24-bit significand that fit: 11 for a normal half (implicit 1 + 10 mantissa bits),
        // fewer for a subnormal half, whose unit is 2^-24. Then round on the dropped bits.
        uint significand = mantissa | 0x800000;                  // 1.mantissa · 2^23
        int drop = e >= -14 ? 13 : -1 - e;                       // subnormal: value / 2^-24 = significand · 2^(e+1)
        uint kept = significand >> drop;
        uint rest = significand & ((1u << drop) - 1);
        uint halfway = 1u << (drop - 1);
        if (rest > halfway || (rest == halfway && (kept & 1) != 0)) kept++;   // nearest, ties to even

        // Normal: bits = (e + 15) << 10 | (kept - 0x400) = ((e + 14) << 10) + kept, the implicit 1 of kept supplying the
        // last exponent step; a rounding carry ripples into the exponent, up to Inf (0x7C00).
        // Subnormal: kept counts units of 2^-24; rounding up to 0x400 yields the smallest normal.
        uint bits = e >= -14 ? ((uint)(e + 14) << 10) + kept : kept;
        return (ushort)(sign | bits);
    }

    public static float HalfToFloat(ushort half)
    {
        uint sign = (uint)(half & 0x8000) << 16;
        uint exponent = (uint)(half >> 10) & 0x1F;
        uint mantissa = half & 0x3FFu;
        uint bits;
        if (exponent == 0x1F)                                    // Inf; NaN keeps its payload, made quiet
            bits = 0x7F800000 | (mantissa != 0 ? 0x400000 | (mantissa << 13) : 0);
        else if (exponent != 0)                                  // normal: rebias the exponent, widen the mantissa
            bits = ((exponent - 15 + 127) << 23) | (mantissa << 13);
        else if (mantissa == 0)
            bits = 0;
        else
        {                                                        // subnormal 0.mantissa · 2^-14: normalise
            int e = -14;
            while ((mantissa & 0x400) == 0) { mantissa <<= 1; e--; }
            bits = ((uint)(e + 127) << 23) | ((mantissa & 0x3FF) << 13);
        }
        return BitConverter.UInt32BitsToSingle(sign | bits);
    }

    public static ushort FloatToBFloat16(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value);
        if ((x & 0x7FFFFFFF) > 0x7F800000) return (ushort)((x >> 16) | 0x40);   // NaN: keep sign and top payload, quiet
        // Nearest even on the 16 dropped bits: adding 0x7FFF carries for anything above halfway, and adding the kept
        // lowest bit makes an exact tie carry only when that bit is odd. Carries ripple into the exponent, up to Inf.
        uint lsb = (x >> 16) & 1;
        return (ushort)((x + 0x7FFF + lsb) >> 16);
    }

    public static float BFloat16ToFloat(ushort bf16)
    {
        uint x = (uint)bf16 << 16;
        if ((x & 0x7FFFFFFF) > 0x7F800000) x |= 0x400000;      // NaN made quiet
        return BitConverter.UInt32BitsToSingle(x);
    }

    /// <summary>One element's bits from one dtype to another (f32 bits in a uint, f16/bf16 in the low 16).</summary>
    public static uint Convert(uint bits, DType from, DType to)
    {
        if (from == to) return bits;
        float f = from switch
        {
            DType.F32 => BitConverter.UInt32BitsToSingle(bits),
            DType.F16 => HalfToFloat((ushort)bits),
            _ => BFloat16ToFloat((ushort)bits),
        };
        return to switch
        {
            DType.F32 => BitConverter.SingleToUInt32Bits(f),
            DType.F16 => FloatToHalf(f),
            _ => FloatToBFloat16(f),
        };
    }

    /// <summary>The bits Fill stores in one element: f32 as given; f16 and bf16 rounded to nearest even (see
    /// above); i32 is (int)value, truncated toward zero and saturating (NaN gives 0).</summary>
    public static uint FillBits(DType dtype, float value) => dtype switch
    {
        DType.F32 => BitConverter.SingleToUInt32Bits(value),
        DType.F16 => FloatToHalf(value),
        DType.BF16 => FloatToBFloat16(value),
        DType.I32 => (uint)(int)value,
        _ => throw new ArgumentException($"fill: unknown dtype {dtype}"),
    };
}
