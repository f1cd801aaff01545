// Attention on every backend against the double reference (o, lse and all three gradients), bad arguments, and
// finite-difference checks of the reference backward.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures]
public class AttentionTests(string backend) : BackendTest(backend)
{
    // Forward: f32 scores over D ≤ 256 terms, a ~2-ulp exp, f32 sums over ≤ 150 keys; o and lse are O(1).
    const double ForwardAtol = 5e-6, ForwardRtol = 3e-5;
    // Backward: two more f32 products per gradient (dP over D, then dS·K or dSᵀ·Q over up to 150 terms).
    const double BackwardAtol = 3e-5, BackwardRtol = 3e-4;
    // Scores up to ~±60: an f32 score carries ~60·6e-8 absolute error in the exponent, amplified through the peaked
    // softmax and its backward.
    const double LargeAtol = 5e-4, LargeRtol = 5e-4;

    [TestCase(1, 1, 1, 1, 1, false)]
    [TestCase(1, 1, 5, 1, 5, false)]       // Lk = 1
    [TestCase(2, 3, 7, 9, 5, false)]
    [TestCase(1, 1, 33, 5, 4, false)]      // CUDA: queries past one 32-query forward block and two 16-query backward blocks
    [TestCase(1, 1, 6, 33, 4, false)]      // CUDA: keys past one 32-key tile and two 16-key backward blocks
    [TestCase(1, 1, 4, 5, 33, false)]      // CUDA: D past one warp's 32 lanes, two elements per lane
    [TestCase(1, 1, 34, 34, 4, true)]      // CUDA: causal across key tiles and query blocks
    [TestCase(1, 1, 7, 1, 5, true)]        // causal with one key, which every query sees (j = 0 ≤ i)
    [TestCase(1, 2, 20, 13, 8, true)]      // causal with fewer keys than queries, partial tiles both ways
    [TestCase(1, 1, 2, 3, 100, false)]     // CUDA: four 32-lane chunks of D, the last partial
    [TestCase(1, 2, 33, 77, 40, false, Category = HostScale)]    // cross attention to 77 text tokens, SD head dim 40
    [TestCase(2, 1, 77, 77, 64, true, Category = HostScale)]     // CLIP causal self attention
    [TestCase(1, 2, 70, 70, 80, false, Category = HostScale)]
    [TestCase(1, 1, 19, 130, 160, false, Category = HostScale)]  // keys past one 80-key forward block
    [TestCase(1, 1, 70, 170, 24, false, Category = HostScale)]   // keys past one 160-key backward block
    [TestCase(1, 1, 200, 200, 12, true, Category = HostScale)]   // causal over several key blocks both ways
    [TestCase(1, 1, 40, 40, 256, true, Category = HostScale)]
    [TestCase(1, 1, 150, 150, 1, true, Category = HostScale)]    // D = 1, queries past several 32-query blocks
    [TestCase(1, 1, 20, 10, 8, true)]      // causal with Lq > Lk
    [TestCase(1, 1, 10, 20, 8, true)]      // causal with Lq < Lk
    [TestCase(1, 1, 65, 67, 16, false, Category = HostScale)]    // lengths one past a block
    [TestCase(2, 2, 100, 90, 40, false, Category = HostScale)]   // large enough for the parallel path, queries split into chunks per head
    [TestCase(1, 2, 130, 130, 32, true, Category = HostScale)]   // parallel causal, chunks of one head see different key counts
    public void MatchesReference(int b, int h, int lq, int lk, int d, bool causal) =>
        Compare(new AttentionShape(b, h, lq, lk, d, causal), 1.0, ForwardAtol, ForwardRtol, BackwardAtol, BackwardRtol);

    [TestCase(false)]
    [TestCase(true)]
    public void LargeScoresStayFinite(bool causal) =>
        Compare(new AttentionShape(1, 2, 21, 21, 16, causal, 0.25f), 4.0, LargeAtol, LargeRtol, LargeAtol, LargeRtol);

    [Test]
    public void ExplicitScale() =>
        Compare(new AttentionShape(2, 2, 9, 11, 12, false, 0.5f), 1.0, ForwardAtol, ForwardRtol, BackwardAtol, BackwardRtol);

    void Compare(AttentionShape s, double magnitude, double fAtol, double fRtol, double bAtol, double bRtol)
    {
        double[] q = TestData.Uniform(1, s.QueryLength, magnitude), k = TestData.Uniform(2, s.KeyLength, magnitude);
        double[] v = TestData.Uniform(3, s.KeyLength), dout = TestData.Uniform(4, s.QueryLength);
        double[] eo = new double[q.Length], expectedLse = new double[s.LseLength];
        AttentionReference.Forward(eo, expectedLse, q, k, v, s);
        double[] edq = new double[q.Length], edk = new double[k.Length], edv = new double[v.Length];
        AttentionReference.Backward(edq, edk, edv, dout, q, k, v, eo, expectedLse, s);

        DeviceBuffer o = Zeros(q.Length), lse = Zeros(s.LseLength), bq = Buf(q), bk = Buf(k), bv = Buf(v);
        Backend.Attention(o, lse, bq, bk, bv, s);
        Close.Assert(Read(o), eo, fAtol, fRtol, $"o {s}");
        Close.Assert(Read(lse), expectedLse, fAtol, fRtol, $"lse {s}");

        // Gradients are overwritten: start them from garbage.
        DeviceBuffer dq = Buf(TestData.Uniform(5, q.Length)), dk = Buf(TestData.Uniform(6, k.Length)), dv = Buf(TestData.Uniform(7, v.Length));
        Backend.AttentionBackward(dq, dk, dv, Buf(dout), bq, bk, bv, Buf(eo), Buf(expectedLse), s);
        Close.Assert(Read(dq), edq, bAtol, bRtol, $"dq {s}");
        Close.Assert(Read(dk), edk, bAtol, bRtol, $"dk {s}");
        Close.Assert(Read(dv), edv, bAtol, bRtol, $"dv {s}");
    }

    [Test]
    public void RejectsBadArguments()
    {
        var s = new AttentionShape(1, 2, 3, 4, 5);
        DeviceBuffer q = Zeros(30), k = Zeros(40), v = Zeros(40), o = Zeros(30), lse = Zeros(6);
        Throws("attention", () => Backend.Attention(o, lse, q, k, v, s with { HeadDim = 0 }));
        Throws("attention", () => Backend.Attention(o, lse, q, k, v, s with { HeadDim = 300 }));
        Throws("attention", () => Backend.Attention(o, lse, q, Zeros(30), v, s));
        Throws("attention", () => Backend.Attention(o, Zeros(5), q, k, v, s));
        Throws("attention", () => Backend.Attention(o, lse, Zeros(30, DType.I32), k, v, s));
        Throws("attention", () => Backend.Attention(o, lse, q, k, v, s with { Scale = float.NaN }));
        Throws("attention backward", () => Backend.AttentionBackward(q, k, Zeros(41), o, q, k, v, o, lse, s));
    }

    static void Throws(string op, TestDelegate call) =>
        Assert.That(Assert.Throws<ArgumentException>(call)!.Message, Does.StartWith(op + ":"));
}

[TestFixture]
public class AttentionGradChecks
{
    [TestCase(1, 2, 3, 4, 3, false)]
    [TestCase(1, 2, 3, 4, 3, true)]
    [TestCase(2, 1, 4, 4, 2, true)]
    [TestCase(1, 1, 5, 2, 4, false)]
    public void Backward(int b, int h, int lq, int lk, int d, bool causal)
    {
        var s = new AttentionShape(b, h, lq, lk, d, causal);
        double[][] inputs = [TestData.Uniform(1, s.QueryLength, 2.0), TestData.Uniform(2, s.KeyLength, 2.0), TestData.Uniform(3, s.KeyLength)];
        GradCheck.Check(inputs, t =>
        {
            var o = new double[s.QueryLength];
            AttentionReference.Forward(o, new double[s.LseLength], t[0], t[1], t[2], s);
            return o;
        }, (t, dout) =>
        {
            double[] o = new double[s.QueryLength], lse = new double[s.LseLength];
            AttentionReference.Forward(o, lse, t[0], t[1], t[2], s);
            double[] dq = new double[t[0].Length], dk = new double[t[1].Length], dv = new double[t[2].Length];
            AttentionReference.Backward(dq, dk, dv, dout, t[0], t[1], t[2], o, lse, s);
            return [dq, dk, dv];
        }, $"attention {s}");
    }
}
