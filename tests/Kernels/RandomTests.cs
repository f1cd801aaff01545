// Philox4x32-10: the Random123 known answers, the stream contract, Cpu vs reference, offsets, and distribution sanity.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TestFixture]
public class PhiloxKnownAnswers
{
    // Random123 tests/kat_vectors, "philox4x32 10" lines: counter (4 words), key (2 words) → output (4 words).
    [TestCase(0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [TestCase(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [TestCase(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void BlockMatchesRandom123(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint e0, uint e1, uint e2, uint e3) =>
        Assert.That(Philox.Block(c0, c1, c2, c3, k0, k1), Is.EqualTo((e0, e1, e2, e3)));
}

public class RandomTests(string backend) : BackendTest(backend)
{
    // Uniform draws are exact on every tier. Normal draws: the Cpu tier's vectorised double log/sincos differ from
    // Math.Log/Cos/Sin by about a double ulp, which after rounding to f32 is at most one f32 ulp (2^-23 relative,
    // and |n| ≤ 5.8 bounds the absolute error by 4.8e-7 where cos or sin is near 0).
    const double NormalRtol = 2.4e-7, NormalAtol = 1e-9;
    // The CUDA tier's Box-Muller runs in f32 (log, sqrt, cos, sin of exact inputs, PhiloxKernels) against the double
    // computation rounded once: a few f32 ulp of |n| ≤ 5.8 (the bound of PhiloxKernelTests).
    const double CudaNormalRtol = 2e-6, CudaNormalAtol = 2e-6;

    double NormalRtolOfTier => Tier(NormalRtol, CudaNormalRtol);
    double NormalAtolOfTier => Tier(NormalAtol, CudaNormalAtol);

    [TestCase(1, 0ul, 0ul)]
    [TestCase(3, 42ul, 0ul)]
    [TestCase(33, 42ul, 7ul)]
    [TestCase(1001, 0x0123456789ABCDEFul, 123456789ul)]
    [TestCase(100_003, 5ul, 0ul)]                           // several chunks over cores, ragged tail
    [TestCase(64, 5ul, 0xFFFFFFFCul)]                       // the counter carries into its high word
    [TestCase(64, 5ul, ulong.MaxValue - 3)]                 // the counter wraps
    [TestCase(21, 5ul, ulong.MaxValue - 1)]                 // wraps inside a ragged draw
    [TestCase(34, 0x123456789ABCDEF0ul, 7ul)]               // both seed words set
    public void UniformMatchesReferenceExactly(int n, ulong seed, ulong offset)
    {
        var expected = new double[n];
        PhiloxReference.Uniform(expected, seed, offset);
        var y = Zeros(n);
        Backend.RandomUniform(y, seed, offset);
        Close.Assert(Read(y), expected, 0, 0, "uniform");
    }

    [TestCase(1, 0ul, 0ul)]
    [TestCase(3, 42ul, 0ul)]
    [TestCase(33, 42ul, 7ul)]
    [TestCase(1001, 0x0123456789ABCDEFul, 123456789ul)]
    [TestCase(100_003, 5ul, 0ul)]
    [TestCase(64, 5ul, 0xFFFFFFFCul)]
    [TestCase(21, 5ul, ulong.MaxValue - 1)]
    [TestCase(34, 0x123456789ABCDEF0ul, 7ul)]
    public void NormalMatchesReference(int n, ulong seed, ulong offset)
    {
        var expected = new double[n];
        PhiloxReference.Normal(expected, seed, offset);
        var y = Zeros(n);
        Backend.RandomNormal(y, seed, offset);
        Close.Assert(Read(y), expected, NormalAtolOfTier, NormalRtolOfTier, "normal");
    }

    [Test]
    public void ElementsFollowTheContract()
    {
        // Element i = lane i % 4 of block (offset + i / 4) under key (seed low, seed high), written out by hand.
        const ulong seed = 0xAABBCCDD11223344, offset = 0x1_0000_0002;
        var y = Zeros(11);
        Backend.RandomUniform(y, seed, offset);
        var values = Read(y);
        for (int i = 0; i < 11; i++)
        {
            ulong counter = offset + (ulong)(i / 4);
            var words = Philox.Block((uint)counter, (uint)(counter >> 32), 0, 0, 0x11223344, 0xAABBCCDD);
            uint word = (i % 4) switch { 0 => words.Item1, 1 => words.Item2, 2 => words.Item3, _ => words.Item4 };
            Assert.That(values[i], Is.EqualTo((word >> 8) / 16777216f), $"element {i}");
        }

        var normal = Zeros(4);
        Backend.RandomNormal(normal, seed, offset);
        var (w0, w1, _, _) = Philox.Block(unchecked((uint)offset), (uint)(offset >> 32), 0, 0, 0x11223344, 0xAABBCCDD);
        double r = Math.Sqrt(-2 * Math.Log(((w0 >> 8) + 1) / 16777216.0)), theta = 2 * Math.PI * (w1 >> 8) / 16777216.0;
        Close.Assert(Read(normal).AsSpan(0, 2), [r * Math.Cos(theta), r * Math.Sin(theta)], NormalAtolOfTier, NormalRtolOfTier, "box-muller pair");
    }

    [Test]
    public void OffsetDrawIsTheMatchingPartOfALongerDraw()
    {
        var whole = Zeros(1000);
        var part = Zeros(501);
        foreach (bool normal in new[] { false, true })
        {
            if (normal) { Backend.RandomNormal(whole, 9, 0); Backend.RandomNormal(part, 9, 10); }
            else { Backend.RandomUniform(whole, 9, 0); Backend.RandomUniform(part, 9, 10); }
            Assert.That(Read(part), Is.EqualTo(Read(whole)[40..541]), normal ? "normal" : "uniform");
        }
    }

    [Test]
    public void DifferentSeedsDiffer()
    {
        var a = Zeros(64);
        var b = Zeros(64);
        Backend.RandomUniform(a, 1, 0);
        Backend.RandomUniform(b, 1ul << 32, 0);         // differs only in the key's high word
        Assert.That(Read(a).Zip(Read(b)).Count(p => p.First == p.Second), Is.LessThan(3));
    }

    [Test]
    public void UniformStatistics()
    {
        // 1M draws: the mean's standard error is 2.9e-4 and the variance's 7.5e-5; bounds are ~7 sigma.
        var y = Zeros(1_000_000);
        Backend.RandomUniform(y, 2024, 0);
        var v = Read(y);
        Assert.That(v.Min(), Is.GreaterThanOrEqualTo(0f));
        Assert.That(v.Max(), Is.LessThan(1f));
        double mean = v.Average(x => (double)x), variance = v.Average(x => (x - mean) * (x - mean));
        Assert.That(mean, Is.EqualTo(0.5).Within(0.002));
        Assert.That(variance, Is.EqualTo(1.0 / 12).Within(5e-4));
    }

    [Test]
    public void NormalStatistics()
    {
        // 1M draws: the mean's standard error is 1e-3 and the variance's 1.4e-3; bounds are ~6 sigma. The tails:
        // P(|n| > 3) = 0.0027, so about 2700 ± 52 such draws.
        var y = Zeros(1_000_000);
        Backend.RandomNormal(y, 2025, 0);
        var v = Read(y);
        Assert.That(v.All(float.IsFinite));
        Assert.That(v.Max(x => Math.Abs(x)), Is.LessThan(5.8f));
        double mean = v.Average(x => (double)x), variance = v.Average(x => (x - mean) * (x - mean));
        Assert.That(mean, Is.EqualTo(0).Within(0.006));
        Assert.That(variance, Is.EqualTo(1).Within(0.009));
        Assert.That(v.Count(x => Math.Abs(x) > 3), Is.InRange(2400, 3000));
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        Assert.That(() => Backend.RandomUniform(Zeros(4, DType.F16), 0, 0), Throws.ArgumentException.With.Message.Contains("random uniform"));
        Assert.That(() => Backend.RandomNormal(Zeros(4, DType.I32), 0, 0), Throws.ArgumentException.With.Message.Contains("random normal"));
    }
}
