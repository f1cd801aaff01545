// CUDA-tier Philox4x32-10 random fill: uniform [0, 1) and Box-Muller normals, the exact stream of Philox (src/Kernels/Philox.cs).
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, PhiloxKernels.Args>? _uniform, _normal;

    public void RandomUniform(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxChecks.Validate("random uniform", y);
        if (y.Length == 0) return;
        _uniform ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Uniform);
        var args = PhiloxKernels.Args.From(seed, offset, y.Length);
        _uniform(args.Blocks, F("random uniform", y), args);
    }

    public void RandomNormal(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxChecks.Validate("random normal", y);
        if (y.Length == 0) return;
        _normal ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Normal);
        var args = PhiloxKernels.Args.From(seed, offset, y.Length);
        _normal(args.Blocks, F("random normal", y), args);
    }
}

/// <summary>
/// Thread j computes block j of the stream (seed, offset) — counter offset + j, key = seed — and writes elements
/// 4j .. 4j+3 (fewer at the end), so the numbers do not depend on the launch shape. Uniform draws are bit-identical to
/// Philox (integer rounds and an exact 24-bit scaling). Normals are computed in f32 (the reference rounds a
/// double result once): −ln u1 uses its series near u1 = 1 so small radii keep their relative accuracy even with
/// lg2.approx on PTX, and the angle is reduced to [−π, π) exactly (2π(u2 − ½)) for sin/cos, whose PTX forms are
/// approximate (about 2^-21 absolute there). CPU emulator: within about 1e-6 of the reference; GPU: about 1e-5.
/// Blocks (ceil(n / 4)) below 2^31 per launch.
/// </summary>
public static class PhiloxKernels
{
    const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;
    const float Inv2Pow24 = 1f / 16777216f;

    public readonly record struct Args(uint SeedLo, uint SeedHi, uint OffsetLo, uint OffsetHi, int N)
    {
        public static Args From(ulong seed, ulong offset, long n) => n is > 0 && (n + 3) / 4 < int.MaxValue
            ? new((uint)seed, (uint)(seed >> 32), (uint)offset, (uint)(offset >> 32), checked((int)n))
            : throw new ArgumentException($"philox: n={n} out of range");

        /// <summary>Threads to launch: one per block of four outputs.</summary>
        public int Blocks => (N + 3) / 4;
    }

    [GpuKernel("philox_uniform_f32")]
    public static void Uniform(Index1D j, ArrayView<float> y, Args p) // y (n)
    {
        Block(j, p, out uint w0, out uint w1, out uint w2, out uint w3);
        Store(y, 4 * j, p.N, (w0 >> 8) * Inv2Pow24, (w1 >> 8) * Inv2Pow24, (w2 >> 8) * Inv2Pow24, (w3 >> 8) * Inv2Pow24);
    }

    [GpuKernel("philox_normal_f32")]
    public static void Normal(Index1D j, ArrayView<float> y, Args p) // y (n)
    {
        Block(j, p, out uint w0, out uint w1, out uint w2, out uint w3);
        BoxMuller(w0, w1, out float n0, out float n1);
        BoxMuller(w2, w3, out float n2, out float n3);
        Store(y, 4 * j, p.N, n0, n1, n2, n3);
    }

    /// <summary>Ten Philox rounds on counter (offset + j, 0, 0) with key seed; 64-bit products are mul.wide.u32.</summary>
    static void Block(int j, Args p, out uint c0, out uint c1, out uint c2, out uint c3)
    {
        ulong counter = (((ulong)p.OffsetHi << 32) | p.OffsetLo) + (ulong)j;           // wraps mod 2^64
        c0 = (uint)counter; c1 = (uint)(counter >> 32); c2 = 0; c3 = 0;
        uint k0 = p.SeedLo, k1 = p.SeedHi;
        for (int round = 0; round < 10; round++)
        {
            if (round > 0) { k0 += W0; k1 += W1; }
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0, n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint)p1; c3 = (uint)p0; c0 = n0; c2 = n2;
        }
    }

    /// <summary>u1 = ((wa >> 8) + 1)·2^-24 ∈ (0, 1], u2 = (wb >> 8)·2^-24; (r cos θ, r sin θ), r = √(−2 ln u1), θ = 2πu2.</summary>
    static void BoxMuller(uint wa, uint wb, out float a, out float b)
    {
        uint k = wa >> 8;
        float v = (16777215u - k) * Inv2Pow24;                                          // 1 − u1, exact
        float minusLog = v < 0.0625f                                                     // −ln(1 − v) = v + v²/2 + ... + v⁷/7
            ? v * (1f + v * (0.5f + v * (1f / 3 + v * (0.25f + v * (0.2f + v * (1f / 6 + v * (1f / 7)))))))
            : -XMath.Log((k + 1) * Inv2Pow24);
        float r = XMath.Sqrt(2f * minusLog);
        float theta = 6.28318531f * ((wb >> 8) * Inv2Pow24 - 0.5f);                    // θ − π ∈ [−π, π)
        a = -r * XMath.Cos(theta);                                                       // cos(θ) = −cos(θ − π)
        b = -r * XMath.Sin(theta);
    }

    static void Store(ArrayView<float> y, int i, int n, float v0, float v1, float v2, float v3)
    {
        if (i < n) y[i] = v0;
        if (i + 1 < n) y[i + 1] = v1;
        if (i + 2 < n) y[i + 2] = v2;
        if (i + 3 < n) y[i + 3] = v3;
    }
}
