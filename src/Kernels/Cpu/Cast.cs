// f32 <-> f16 <-> bf16 conversion with AVX-512 integer bit tricks, bit-identical to the reference, parallel over chunks.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

/// <summary>.NET exposes no F16C/AVX512-FP16 conversions, so both directions are branch-free integer/float tricks on
/// 16 lanes, exactly reproducing <see cref="CastReference"/> (round to nearest even, quiet NaNs with their payload).
/// Everything goes through f32 bits in 32-bit lanes; f16/bf16 are widened on load and narrowed on store.</summary>
public sealed unsafe partial class CpuBackend
{
    public void Cast(DeviceBuffer dst, DeviceBuffer src)
    {
        CastChecks.Validate(dst, src);
        byte* s = (byte*)Host(src).Pointer, d = (byte*)Host(dst).Pointer;
        if (src.DType == dst.DType) { MoveBytes(d, s, src.Bytes); return; }
        DType from = src.DType, to = dst.DType;
        Chunks.For(src.Length, 1 << 16, (start, end) => CastRange(d, to, s, from, start, end));
    }

    internal static void CastRange(byte* dst, DType to, byte* src, DType from, long start, long end)
    {
        long i = start;
        if (Avx512F.IsSupported)
            for (; i + 16 <= end; i += 16)
            {
                Vector512<uint> f32 = from switch
                {
                    DType.F32 => Vector512.Load((uint*)src + i),
                    DType.F16 => HalfToFloatBits(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)src + i))),
                    _ => BFloat16ToFloatBits(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)src + i))),
                };
                if (to == DType.F32) f32.Store((uint*)dst + i);
                else Avx512F.ConvertToVector256UInt16(to == DType.F16 ? FloatToHalfBits(f32) : FloatToBFloat16Bits(f32)).Store((ushort*)dst + i);
            }
        for (; i < end; i++)
        {
            uint bits = from == DType.F32 ? ((uint*)src)[i] : ((ushort*)src)[i];
            uint result = HalfPrecision.Convert(bits, from, to);
            if (to == DType.F32) ((uint*)dst)[i] = result;
            else ((ushort*)dst)[i] = (ushort)result;
        }
    }

    static Vector512<uint> FloatToHalfBits(Vector512<uint> x)
    {
        var sign = (x >>> 16) & Vector512.Create(0x8000u);
        var a = x & Vector512.Create(0x7FFFFFFFu);
        // Normal half (2^-14 ≤ |x| < 2^16): rebias the exponent by (15 − 127), then round to nearest even on the 13
        // dropped bits: + 0xFFF carries above halfway, + the kept lowest bit carries an exact tie when it is odd.
        var normal = (a + Vector512.Create(unchecked((uint)(-112 << 23) + 0xFFF)) + ((a >>> 13) & Vector512.Create(1u))) >>> 13;
        // Subnormal half (|x| < 2^-14): adding 0.5f, whose ulp is 2^-24, lets the FPU round |x| to a whole number of
        // half subnormal units (nearest even); subtracting 0.5f's bits leaves that count.
        var sub = (a.AsSingle() + Vector512.Create(0.5f)).AsUInt32() - Vector512.Create(0x3F000000u);
        // |x| ≥ 2^16 → Inf; NaN → quiet NaN keeping the top 9 payload bits.
        var special = Vector512.ConditionalSelect(Vector512.GreaterThan(a, Vector512.Create(0x7F800000u)),
            Vector512.Create(0x7E00u) | ((a >>> 13) & Vector512.Create(0x3FFu)), Vector512.Create(0x7C00u));
        var r = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(113u << 23)), sub, normal);
        r = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(a, Vector512.Create(143u << 23)), special, r);
        return r | sign;
    }

    static Vector512<uint> HalfToFloatBits(Vector512<uint> h)
    {
        var a = h & Vector512.Create(0x7FFFu);
        var exponent = a & Vector512.Create(0x7C00u);
        var o = (a << 13) + Vector512.Create(112u << 23);                       // normal: rebias by (127 − 15)
        // Inf/NaN: rebias once more to exponent 255; quiet a NaN.
        var quiet = Vector512.GreaterThan(a, Vector512.Create(0x7C00u)) & Vector512.Create(0x400000u);
        var special = (o + Vector512.Create(112u << 23)) | quiet;
        // Subnormal/zero: build 2^-14 · (1 + m/1024) and subtract 2^-14, leaving m · 2^-24 exactly.
        var sub = ((o + Vector512.Create(1u << 23)).AsSingle() - Vector512.Create(113u << 23).AsSingle()).AsUInt32();
        o = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512.Create(0x7C00u)), special, o);
        o = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512<uint>.Zero), sub, o);
        return o | ((h & Vector512.Create(0x8000u)) << 16);
    }

    static Vector512<uint> FloatToBFloat16Bits(Vector512<uint> x)
    {
        var rounded = (x + Vector512.Create(0x7FFFu) + ((x >>> 16) & Vector512.Create(1u))) >>> 16;   // nearest even
        var nan = Vector512.GreaterThan(x & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x7F800000u));
        return Vector512.ConditionalSelect(nan, (x >>> 16) | Vector512.Create(0x40u), rounded);
    }

    static Vector512<uint> BFloat16ToFloatBits(Vector512<uint> b)
    {
        var x = b << 16;
        var nan = Vector512.GreaterThan(x & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x7F800000u));
        return x | (nan & Vector512.Create(0x400000u));
    }
}
