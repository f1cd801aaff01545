// CUDA-tier dtype casts between f32, f16 and bf16 by bit manipulation: round to nearest even, NaN stays a quiet NaN.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<ushort>, ArrayView<float>>? _castF32F16, _castF32Bf16;
    Action<Index1D, ArrayView<float>, ArrayView<ushort>>? _castF16F32, _castBf16F32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>>? _castF16Bf16, _castBf16F16;

    public void Cast(DeviceBuffer dst, DeviceBuffer src)
    {
        CastChecks.Validate(dst, src);
        IlgpuBuffer d = Buf("cast", dst), s = Buf("cast", src);
        if (src.Length == 0) return;
        if (dst.DType == src.DType) { CopyBytes(d.View, s.View); return; }
        int n = Count("cast", src.Length);
        switch (src.DType, dst.DType)
        {
            case (DType.F32, DType.F16):
                (_castF32F16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToF16))(n, d.U16, s.F32);
                break;
            case (DType.F32, DType.BF16):
                (_castF32Bf16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToBf16))(n, d.U16, s.F32);
                break;
            case (DType.F16, DType.F32):
                (_castF16F32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.F16ToF32))(n, d.F32, s.U16);
                break;
            case (DType.BF16, DType.F32):
                (_castBf16F32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.Bf16ToF32))(n, d.F32, s.U16);
                break;
            case (DType.F16, DType.BF16):
                (_castF16Bf16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.F16ToBf16))(n, d.U16, s.U16);
                break;
            default: // (BF16, F16), the only pair left after validation
                (_castBf16F16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.Bf16ToF16))(n, d.U16, s.U16);
                break;
        }
    }
}

/// <summary>
/// One thread per element, bit-identical to CastReference (which defines the layouts and rounding): narrowing rounds to
/// nearest, ties to even, f16 keeps subnormals and overflows to ±Inf, NaNs keep sign and top payload and are made quiet;
/// widening is exact. Integer bit operations only (no cvt instructions, whose NaN payload handling differs), so the
/// GPU gives the same bits as the CPU. f16 ↔ bf16 goes through f32, rounding once. Element counts below 2^31 per launch.
/// </summary>
public static class CastKernels
{
    [GpuKernel("cast_f32_f16")]
    public static void F32ToF16(Index1D i, ArrayView<ushort> dst, ArrayView<float> src) => dst[i] = ToHalf(src[i]);        // (n) each

    [GpuKernel("cast_f16_f32")]
    public static void F16ToF32(Index1D i, ArrayView<float> dst, ArrayView<ushort> src) => dst[i] = FromHalf(src[i]);      // (n) each

    [GpuKernel("cast_f32_bf16")]
    public static void F32ToBf16(Index1D i, ArrayView<ushort> dst, ArrayView<float> src) => dst[i] = ToBFloat16(src[i]);   // (n) each

    [GpuKernel("cast_bf16_f32")]
    public static void Bf16ToF32(Index1D i, ArrayView<float> dst, ArrayView<ushort> src) => dst[i] = FromBFloat16(src[i]); // (n) each

    [GpuKernel("cast_f16_bf16")]
    public static void F16ToBf16(Index1D i, ArrayView<ushort> dst, ArrayView<ushort> src) => dst[i] = ToBFloat16(FromHalf(src[i]));   // (n) each

    [GpuKernel("cast_bf16_f16")]
    public static void Bf16ToF16(Index1D i, ArrayView<ushort> dst, ArrayView<ushort> src) => dst[i] = ToHalf(FromBFloat16(src[i]));   // (n) each

    static ushort ToHalf(float value)
    {
        uint x = Interop.FloatAsInt(value);
        uint sign = (x >> 16) & 0x8000, exponent = (x >> 23) & 0xFF, mantissa = x & 0x7FFFFF;
        if (exponent == 0xFF) return (ushort)(sign | 0x7C00 | (mantissa != 0 ? 0x200 | (mantissa >> 13) : 0));   // Inf, quiet NaN
        int e = (int)exponent - 127;
        if (e > 15) return (ushort)(sign | 0x7C00);                         // beyond the largest half: Inf
        if (e < -25) return (ushort)sign;                                   // under half the smallest subnormal: ±0
        uint significand = mantissa | 0x800000;
        int drop = e >= -14 ? 13 : -1 - e;                                  // 13 for a normal half, more for a subnormal
        uint kept = significand >> drop, rest = significand & ((1u << drop) - 1), halfway = 1u << (drop - 1);
        if (rest > halfway || (rest == halfway && (kept & 1) != 0)) kept++; // nearest, ties to even
        return (ushort)(sign | (e >= -14 ? ((uint)(e + 14) << 10) + kept : kept));   // a carry ripples into the exponent
    }

    static float FromHalf(ushort half)
    {
        uint sign = (uint)(half & 0x8000) << 16, exponent = (uint)(half >> 10) & 0x1F, mantissa = half & 0x3FFu;
        uint bits;
        if (exponent == 0x1F) bits = 0x7F800000 | (mantissa != 0 ? 0x400000 | (mantissa << 13) : 0);   // Inf, quiet NaN
        else if (exponent != 0) bits = ((exponent + 112) << 23) | (mantissa << 13);                     // rebias 15 → 127
        else if (mantissa == 0) bits = 0;
        else
        {
            // Subnormal m·2^-24: the top set bit of m (position p < 10) becomes the implicit 1 of 2^(p−24).
            int p = 31 - IntrinsicMath.BitOperations.LeadingZeroCount(mantissa);
            bits = ((uint)(p - 24 + 127) << 23) | ((mantissa << (23 - p)) & 0x7FFFFF);
        }
        return Interop.IntAsFloat(sign | bits);
    }

    static ushort ToBFloat16(float value)
    {
        uint x = Interop.FloatAsInt(value);
        if ((x & 0x7FFFFFFF) > 0x7F800000) return (ushort)((x >> 16) | 0x40);   // NaN: sign and top payload, quiet
        return (ushort)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);                   // nearest even on the dropped 16 bits
    }

    static float FromBFloat16(ushort bf16)
    {
        uint x = (uint)bf16 << 16;
        if ((x & 0x7FFFFFFF) > 0x7F800000) x |= 0x400000;                       // NaN made quiet
        return Interop.IntAsFloat(x);
    }
}
