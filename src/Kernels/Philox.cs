// Philox4x32-10 counter-based random numbers: the stream every tier reproduces, with its uniform and normal draws.
namespace DreamBooth.Kernels;

/// <summary>
/// The random-number contract. Every tier (reference, cpu, and later CUDA) produces the same numbers from the same
/// (seed, offset); a uniform draw is bit-identical on every tier, a normal draw equal up to the last bits of log/cos/sin.
///
/// Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
/// multipliers M0 = 0xD2511F53, M1 = 0xCD9E8D57, key increments W0 = 0x9E3779B9, W1 = 0xBB67AE85. One block maps a
/// 128-bit counter (c0, c1, c2, c3) and a 64-bit key (k0, k1) to four 32-bit words (w0, w1, w2, w3); the Random123
/// known-answer vectors pin it down.
///
/// Stream: key = (low 32 bits of seed, high 32 bits of seed). Element i of a draw of n elements comes from block
/// j = i / 4, whose counter is (c0, c1) = (low, high 32 bits of offset + j) (wrapping mod 2^64), c2 = c3 = 0, and
/// takes word i % 4 of that block's output. So a draw with offset k equals elements [4k, ...) of a longer draw from
/// offset 0: consumers advance offset by ceil(n / 4) to get fresh numbers.
///
/// Uniform in [0, 1): u = (w >> 8) · 2^-24 (24 random bits, exact in f32).
/// Normal N(0, 1), Box-Muller on word pairs (w0, w1) and (w2, w3) of a block:
///   u1 = ((w0 >> 8) + 1) · 2^-24 in (0, 1],  u2 = (w1 >> 8) · 2^-24 in [0, 1),
///   n0 = √(−2 ln u1) · cos(2π u2),  n1 = √(−2 ln u1) · sin(2π u2);  likewise n2, n3 from (w2, w3).
/// Computed in double and rounded once to f32; the largest magnitude is √(48 ln 2) ≈ 5.77, never Inf or NaN.
/// </summary>
public static class Philox
{
    public const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;
    public const double TwoPow24 = 16777216.0;

    /// <summary>Ten rounds of Philox4x32 on one counter. Each round multiplies c0 and c2 by the constants (64-bit
    /// products split into hi and lo halves) and mixes the halves with c1, c3 and the round key; the key advances
    /// by (W0, W1) between rounds.</summary>
    public static (uint W0, uint W1, uint W2, uint W3) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0) { k0 += W0; k1 += W1; }
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            (c0, c1, c2, c3) = ((uint)(p1 >> 32) ^ c1 ^ k0, (uint)p1, (uint)(p0 >> 32) ^ c3 ^ k1, (uint)p0);
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>The four words of block j of the stream (seed, offset).</summary>
    public static (uint W0, uint W1, uint W2, uint W3) StreamBlock(ulong seed, ulong offset, long j)
    {
        ulong counter = unchecked(offset + (ulong)j);
        return Block((uint)counter, (uint)(counter >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
    }

    public static double ToUniform(uint w) => (w >> 8) / TwoPow24;

    /// <summary>Box-Muller on one word pair: (r cos θ, r sin θ) with r = √(−2 ln u1), θ = 2π u2.</summary>
    public static (double, double) ToNormal(uint wa, uint wb)
    {
        double u1 = ((wa >> 8) + 1) / TwoPow24;
        double u2 = (wb >> 8) / TwoPow24;
        double r = Math.Sqrt(-2 * Math.Log(u1));
        double theta = 2 * Math.PI * u2;
        return (r * Math.Cos(theta), r * Math.Sin(theta));
    }
}
