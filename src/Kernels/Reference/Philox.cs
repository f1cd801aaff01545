// The random draws element by element: uniform and normal numbers of the Philox stream (Philox.cs), in double.
namespace DreamBooth.Kernels.Reference;

/// <summary>The oracle of the random draws: <see cref="Philox"/>'s stream, element by element in double.</summary>
public static class PhiloxReference
{
    public static void Uniform(Span<double> y, ulong seed, ulong offset)  // (n)
    {
        for (int i = 0; i < y.Length; i += 4)
        {
            var (w0, w1, w2, w3) = Philox.StreamBlock(seed, offset, i / 4);
            ReadOnlySpan<double> block = [Philox.ToUniform(w0), Philox.ToUniform(w1), Philox.ToUniform(w2), Philox.ToUniform(w3)];
            block[..Math.Min(4, y.Length - i)].CopyTo(y[i..]);
        }
    }

    public static void Normal(Span<double> y, ulong seed, ulong offset)   // (n)
    {
        for (int i = 0; i < y.Length; i += 4)
        {
            var (w0, w1, w2, w3) = Philox.StreamBlock(seed, offset, i / 4);
            var (n0, n1) = Philox.ToNormal(w0, w1);
            var (n2, n3) = Philox.ToNormal(w2, w3);
            ReadOnlySpan<double> block = [n0, n1, n2, n3];
            block[..Math.Min(4, y.Length - i)].CopyTo(y[i..]);
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void RandomUniform(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxChecks.Validate("random uniform", y);
        var result = new double[y.Length];
        PhiloxReference.Uniform(result, seed, offset);
        Store(y, result);
    }

    public void RandomNormal(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxChecks.Validate("random normal", y);
        var result = new double[y.Length];
        PhiloxReference.Normal(result, seed, offset);
        Store(y, result);
    }
}
