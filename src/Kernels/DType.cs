// Element types a device buffer can hold, and their sizes.
namespace DreamBooth.Kernels;

/// <summary>U8 holds the codes of 8-bit optimizer state (AdamW8bit): buffers of it are allocated, uploaded, downloaded
/// and copied, and no other data-movement op takes them.</summary>
public enum DType { F32, F16, BF16, I32, U8 }

public static class DTypeExtensions
{
    public static int Size(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    public static string Name(this DType t) => t.ToString().ToLowerInvariant();
}
