// The element types a safetensors header can name: their spelling in the header, their size, and the order the writer uses.
namespace DreamBooth.Models.Formats;

/// <summary>Declared in the order of the reference library's dtype enum: the writer lays tensors out by this order,
/// widest first, so that every tensor starts at a multiple of its element size.</summary>
public enum SafetensorsDType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 }

public static class SafetensorsDTypes
{
    public static int Size(this SafetensorsDType t) => t switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E4M3 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown safetensors dtype"),
    };

    /// <summary>The header spelling ("F32", "BF16", ...); null when it names no dtype we know.</summary>
    public static SafetensorsDType? Parse(string name) =>
        Enum.TryParse(name, ignoreCase: false, out SafetensorsDType t) && Enum.IsDefined(t) && name == t.ToString() ? t : null;
}
