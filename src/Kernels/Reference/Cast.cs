// Cast between f32, f16 and bf16, element by element through HalfPrecision (the conversions every tier shares).
namespace DreamBooth.Kernels.Reference;

public sealed partial class ReferenceBackend
{
    public void Cast(DeviceBuffer dst, DeviceBuffer src)
    {
        CastChecks.Validate(dst, src);
        Span<uint> s32 = Host(src).AsSpan<uint>(), d32 = Host(dst).AsSpan<uint>();        // views by element size
        Span<ushort> s16 = Host(src).AsSpan<ushort>(), d16 = Host(dst).AsSpan<ushort>();
        for (int i = 0; i < src.Length; i++)
        {
            uint bits = src.DType == DType.F32 ? s32[i] : s16[i];
            uint result = HalfPrecision.Convert(bits, src.DType, dst.DType);
            if (dst.DType == DType.F32) d32[i] = result;
            else d16[i] = (ushort)result;
        }
    }
}
