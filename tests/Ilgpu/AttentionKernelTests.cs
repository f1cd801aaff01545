// The fused attention kernels (forward, Δ, dK/dV, dQ) on ILGPU's CPU emulator against the double reference.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class AttentionKernelTests : EmulatorTest
{
    // f32 dot products over D ≤ 100 and softmax sums over Lk ≤ 35 of inputs in [-1, 1), in tile order with online rescaling;
    // on a GPU ex2/lg2.approx add a few ulp more.
    const double ForwardAtol = 2e-6, ForwardRtol = 1e-5;
    // The backward chains two such products (dP then dS·K or dSᵀ·Q) over Lq or Lk ≤ 35 terms.
    const double BackwardAtol = 1e-5, BackwardRtol = 1e-4;

    // Partial tiles (Lq, Lk not multiples of 32 or 16), two tiles (33, 34, 35), Lk = 1, odd D, a second lane chunk (D = 40),
    // four chunks, the last partial (D = 100). Larger D only adds more of the same chunks (and costs emulator time).
    static readonly AttentionShape[] Shapes =
    [
        new(1, 2, 20, 13, 8), new(1, 2, 20, 13, 8, Causal: true), new(2, 1, 5, 1, 3), new(1, 1, 7, 1, 5, Causal: true),
        new(1, 1, 33, 34, 8, Causal: true), new(1, 1, 3, 35, 40, Scale: 0.3f), new(1, 1, 2, 3, 100),
    ];

    /// <summary>Inputs rounded to f32 first, so the reference sees exactly what the kernels see.</summary>
    static double[] Data(int seed, long n) => Array.ConvertAll(TestData.ToFloat(TestData.Uniform(seed, n)), v => (double)v);

    [Test]
    public void ForwardMatchesTheReference([ValueSource(nameof(Shapes))] AttentionShape s)
    {
        double[] q = Data(1, s.QueryLength), k = Data(2, s.KeyLength), v = Data(3, s.KeyLength);
        double[] o = new double[s.QueryLength], lse = new double[s.LseLength];
        AttentionReference.Forward(o, lse, q, k, v, s);
        using var qb = Upload(q);
        using var kb = Upload(k);
        using var vb = Upload(v);
        using var ob = Acc.Allocate1D<float>(s.QueryLength);
        using var lb = Acc.Allocate1D<float>(s.LseLength);
        var forward = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            AttentionKernels.Args>(AttentionKernels.Forward);
        forward(AttentionKernels.ForwardConfig(s), ob.View, lb.View, qb.View, kb.View, vb.View, AttentionKernels.Args.From(s));
        Close.Assert(ob.GetAsArray1D(), o, ForwardAtol, ForwardRtol, $"attention o {s}");
        Close.Assert(lb.GetAsArray1D(), lse, ForwardAtol, ForwardRtol, $"attention lse {s}");
    }

    [Test]
    public void BackwardMatchesTheReference([ValueSource(nameof(Shapes))] AttentionShape s)
    {
        double[] q = Data(1, s.QueryLength), k = Data(2, s.KeyLength), v = Data(3, s.KeyLength), dout = Data(4, s.QueryLength);
        double[] o = new double[s.QueryLength], lse = new double[s.LseLength];
        AttentionReference.Forward(o, lse, q, k, v, s);
        o = Array.ConvertAll(TestData.ToFloat(o), x => (double)x);
        lse = Array.ConvertAll(TestData.ToFloat(lse), x => (double)x);
        double[] dq = new double[s.QueryLength], dk = new double[s.KeyLength], dv = new double[s.KeyLength];
        AttentionReference.Backward(dq, dk, dv, dout, q, k, v, o, lse, s);

        using var qb = Upload(q);
        using var kb = Upload(k);
        using var vb = Upload(v);
        using var ob = Upload(o);
        using var lb = Upload(lse);
        using var db = Upload(dout);
        using var deltab = Acc.Allocate1D<float>(s.LseLength);
        // Stale values in the outputs: the kernels overwrite every element.
        using var dqb = Upload(Data(5, s.QueryLength));
        using var dkb = Upload(Data(6, s.KeyLength));
        using var dvb = Upload(Data(7, s.KeyLength));
        var args = AttentionKernels.Args.From(s);
        var delta = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(
            AttentionKernels.Delta);
        var keyGrad = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.KeyGrad);
        var queryGrad = Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.QueryGrad);
        delta(AttentionKernels.DeltaConfig(s), deltab.View, db.View, ob.View, args);
        keyGrad(AttentionKernels.KeyGradConfig(s), dkb.View, dvb.View, db.View, qb.View, kb.View, vb.View, lb.View, deltab.View, args);
        queryGrad(AttentionKernels.QueryGradConfig(s), dqb.View, db.View, qb.View, kb.View, vb.View, lb.View, deltab.View, args);

        var expectedDelta = new double[s.LseLength];
        for (int b = 0; b < s.Batch; b++)
            for (int i = 0; i < s.QueryLen; i++)
                for (int h = 0; h < s.Heads; h++)
                    for (int t = 0; t < s.HeadDim; t++)
                    {
                        long at = (((long)b * s.QueryLen + i) * s.Heads + h) * s.HeadDim + t;
                        expectedDelta[((long)b * s.Heads + h) * s.QueryLen + i] += dout[at] * o[at];
                    }
        Close.Assert(deltab.GetAsArray1D(), expectedDelta, ForwardAtol, ForwardRtol, $"attention delta {s}");
        Close.Assert(dqb.GetAsArray1D(), dq, BackwardAtol, BackwardRtol, $"attention dq {s}");
        Close.Assert(dkb.GetAsArray1D(), dk, BackwardAtol, BackwardRtol, $"attention dk {s}");
        Close.Assert(dvb.GetAsArray1D(), dv, BackwardAtol, BackwardRtol, $"attention dv {s}");
    }

    [Test]
    public void OneStagedTileFitsTheDefaultSharedMemoryForEveryHeadDim([Values(40, 64, 80, 160, 256)] int d)
    {
        int bytes = AttentionKernels.SharedFloats(new AttentionShape(1, 1, 1, 1, d)) * sizeof(float);
        Assert.That(bytes, Is.LessThanOrEqualTo(48 * 1024), $"D={d}");
    }
}
