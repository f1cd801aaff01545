// Shapes of up to 6 dims as kernel arguments: dims right-aligned and padded with leading 1s, strides in elements.
namespace DreamBooth.Kernels.Ilgpu;

/// <summary>Six dims, D5 the fastest-varying. Element counts stay below 2^31 per launch (Index1D), so ints suffice.</summary>
public readonly record struct Dims6(int D0, int D1, int D2, int D3, int D4, int D5)
{
    public const int MaxRank = 6;

    /// <summary>The shape right-aligned to six dims, missing leading dims 1.</summary>
    public static Dims6 From(ReadOnlySpan<int> shape)
    {
        if (shape.Length > MaxRank) throw new ArgumentException($"ILGPU kernels take up to {MaxRank} dims, not {shape.Length}");
        Span<int> d = stackalloc int[MaxRank];
        d.Fill(1);
        shape.CopyTo(d[(MaxRank - shape.Length)..]);
        return new(d[0], d[1], d[2], d[3], d[4], d[5]);
    }

    public int this[int d] => d switch { 0 => D0, 1 => D1, 2 => D2, 3 => D3, 4 => D4, _ => D5 };

    public long Count => (long)D0 * D1 * D2 * D3 * D4 * D5;

    /// <summary>Row-major element strides of this shape.</summary>
    public Strides6 DenseStrides() => new(D1 * D2 * D3 * D4 * D5, D2 * D3 * D4 * D5, D3 * D4 * D5, D4 * D5, D5, 1);

    /// <summary>Element offset of linear index i (row-major over these dims) in a tensor with the given strides.</summary>
    public int Offset(int i, Strides6 s)
    {
        int c5 = i % D5; i /= D5;
        int c4 = i % D4; i /= D4;
        int c3 = i % D3; i /= D3;
        int c2 = i % D2; i /= D2;
        int c1 = i % D1; i /= D1;
        return i * s.S0 + c1 * s.S1 + c2 * s.S2 + c3 * s.S3 + c4 * s.S4 + c5 * s.S5;
    }
}

/// <summary>Element strides for the six dims of a Dims6; 0 along a broadcast dim.</summary>
public readonly record struct Strides6(int S0, int S1, int S2, int S3, int S4, int S5)
{
    public static Strides6 From(ReadOnlySpan<long> strides)
    {
        Span<int> s = stackalloc int[Dims6.MaxRank];
        s.Clear();
        for (int d = 0; d < strides.Length; d++) s[Dims6.MaxRank - strides.Length + d] = checked((int)strides[d]);
        return new(s[0], s[1], s[2], s[3], s[4], s[5]);
    }

    public int this[int d] => d switch { 0 => S0, 1 => S1, 2 => S2, 3 => S3, 4 => S4, _ => S5 };

    /// <summary>The dense strides of a shape read at the coordinates of a broadcast shape: 0 where the shape is 1.</summary>
    public static Strides6 Broadcast(Dims6 shape)
    {
        var dense = shape.DenseStrides();
        Span<int> s = stackalloc int[Dims6.MaxRank];
        for (int d = 0; d < Dims6.MaxRank; d++) s[d] = shape[d] == 1 ? 0 : dense[d];
        return new(s[0], s[1], s[2], s[3], s[4], s[5]);
    }
}
