// Group norm on every backend against the double reference, bad arguments, and finite-difference checks of the backward.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class GroupNormTests(string backend) : BackendTest(backend)
{
    // Forward: statistics are double-accumulated (cpu: float within 1024-element chunks), y = (x − mean)·a + b in f32;
    // a few ulp of |y| ≲ 4 plus the f32 rounding of mean (|mean| up to 100 in the offset case) times rstd.
    const double ForwardTol = 2e-5;
    // Backward: dx, dgamma, dbeta sum up to ~4000 f32 terms of magnitude ~1 per group or channel.
    const double BackwardAtol = 1e-4, BackwardRtol = 1e-4;

    [TestCase(2, 6, 5, 3, 0.0)]
    [TestCase(1, 4, 1, 4, 0.0)]      // G = C, HW = 1: one element per group
    [TestCase(3, 8, 17, 1, 0.0)]     // G = 1: one group over all channels
    [TestCase(1, 4, 150, 2, 0.0)]    // CUDA: a group of 300 elements, more than the 256 threads of a group
    [TestCase(1, 4, 20, 2, 100.0)]   // mean ≫ std: the one-pass statistics must not cancel
    [TestCase(2, 64, 37, 32, 0.0, Category = HostScale)]   // SD's 32 groups, HW not a multiple of 16
    [TestCase(1, 32, 1030, 8, 0.0, Category = HostScale)]  // groups spanning several float chunks
    [TestCase(2, 16, 64, 4, 100.0, Category = HostScale)]  // mean ≫ std over more channels and pixels
    public void MatchesReference(int n, int c, int hw, int groups, double offset)
    {
        double[] x = TestData.Uniform(1, (long)n * c * hw, 2.0).Select(v => (double)(float)(v + offset)).ToArray();
        double[] gamma = TestData.Uniform(2, c).Select(v => 1 + v).ToArray(), beta = TestData.Uniform(3, c);
        double[] dy = TestData.Uniform(4, x.Length), dgamma0 = TestData.Uniform(5, c), dbeta0 = TestData.Uniform(6, c);
        const float eps = 1e-5f;
        var ey = new double[x.Length];
        var em = new double[n * groups];
        var er = new double[n * groups];
        GroupNormReference.Forward(ey, em, er, x, gamma, beta, n, c, hw, groups, eps);
        var edx = new double[x.Length];
        double[] edg = (double[])dgamma0.Clone(), edb = (double[])dbeta0.Clone();
        GroupNormReference.Backward(edx, edg, edb, dy, x, em, er, gamma, n, c, hw, groups);

        DeviceBuffer y = Zeros(x.Length), mean = Zeros(n * groups), rstd = Zeros(n * groups), bx = Buf(x), bg = Buf(gamma);
        Backend.GroupNorm(y, mean, rstd, bx, bg, Buf(beta), n, c, hw, groups, eps);
        Close.Assert(Read(y), ey, ForwardTol, ForwardTol, "y");
        Close.Assert(Read(mean), em, ForwardTol, ForwardTol, "mean");
        Close.Assert(Read(rstd), er, ForwardTol, ForwardTol, "rstd");

        DeviceBuffer dx = Zeros(x.Length), dg = Buf(dgamma0), db = Buf(dbeta0);
        Backend.GroupNormBackward(dx, dg, db, Buf(dy), bx, mean, rstd, bg, n, c, hw, groups);
        Close.Assert(Read(dx), edx, BackwardAtol, BackwardRtol, "dx");
        Close.Assert(Read(dg), edg, BackwardAtol, BackwardRtol, "dgamma (accumulated)");
        Close.Assert(Read(db), edb, BackwardAtol, BackwardRtol, "dbeta (accumulated)");
    }

    [Test]
    public void RejectsBadArguments()
    {
        DeviceBuffer x = Zeros(24), y = Zeros(24), m = Zeros(2), r = Zeros(2), g = Zeros(6), b = Zeros(6);
        Throws("group_norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 4, 1e-5f)); // 6 % 4 != 0
        Throws("group_norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 0, 1e-5f));
        Throws("group_norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 2, -1f));
        Throws("group_norm", () => Backend.GroupNorm(y, m, r, x, Zeros(5), b, 1, 6, 4, 2, 1e-5f));
        Throws("group_norm", () => Backend.GroupNorm(y, m, r, Zeros(24, DType.I32), g, b, 1, 6, 4, 2, 1e-5f));
        Throws("group_norm_backward", () => Backend.GroupNormBackward(Zeros(23), g, b, y, x, m, r, g, 1, 6, 4, 2));
        Throws("group_norm_backward", () => Backend.GroupNormBackward(y, g, b, y, x, Zeros(3), r, g, 1, 6, 4, 2));
    }

    static void Throws(string op, TestDelegate call) =>
        Assert.That(Assert.Throws<ArgumentException>(call)!.Message, Does.StartWith(op + ":"));
}

[TestFixture]
public class GroupNormGradChecks
{
    [TestCase(2, 4, 3, 2)]
    [TestCase(1, 3, 5, 1)]
    [TestCase(2, 2, 1, 2)]
    public void Backward(int n, int c, int hw, int groups)
    {
        double[][] inputs = [TestData.Uniform(1, n * c * hw), TestData.Uniform(2, c).Select(v => 1 + v).ToArray(), TestData.Uniform(3, c)];
        const double eps = 1e-3;
        GradCheck.Check(inputs, t =>
        {
            var y = new double[t[0].Length];
            GroupNormReference.Forward(y, new double[n * groups], new double[n * groups], t[0], t[1], t[2], n, c, hw, groups, eps);
            return y;
        }, (t, dy) =>
        {
            double[] mean = new double[n * groups], rstd = new double[n * groups];
            GroupNormReference.Forward(new double[t[0].Length], mean, rstd, t[0], t[1], t[2], n, c, hw, groups, eps);
            double[] dx = new double[t[0].Length], dg = new double[c], db = new double[c];
            GroupNormReference.Backward(dx, dg, db, dy, t[0], mean, rstd, t[1], n, c, hw, groups);
            return [dx, dg, db];
        }, $"group_norm n={n} c={c} hw={hw} g={groups}");
    }
}
