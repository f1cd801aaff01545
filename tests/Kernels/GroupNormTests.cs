// Group norm (alone and with its fused SiLU) on every backend against the double reference, bad arguments, and finite-difference checks of the backward.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures]
public class GroupNormTests(string backend) : BackendTest(backend)
{
    // Forward: statistics are double-accumulated (cpu: float within 1024-element chunks), z = (x − mean)·a + b in f32;
    // a few ulp of |z| ≲ 4 plus the f32 rounding of mean (|mean| up to 100 in the offset case) times rstd. SiLU's slope is
    // at most 1.1 and its f32 sigmoid is within ~1e-7 relative, so y = silu(z) keeps the bound.
    const double ForwardTol = 2e-5;
    // Backward: dx, dgamma, dbeta sum up to ~4000 f32 terms of magnitude ~1 per group or channel; with SiLU each term's
    // dy·silu'(z) moves by at most ½·|dz error| (|silu''| ≤ ½) on top.
    const double BackwardAtol = 1e-4, BackwardRtol = 1e-4;

    // (N, C, HW, G, offset of x, host scale)
    static readonly (int N, int C, int HW, int G, double Offset, bool Host)[] Shapes =
    [
        (2, 6, 5, 3, 0.0, false),
        (1, 4, 1, 4, 0.0, false),       // G = C, HW = 1: one element per group
        (3, 1, 1, 1, 0.0, false),       // one channel of one pixel per image: a group of one element, several images
        (3, 8, 17, 1, 0.0, false),      // G = 1: one group over all channels
        (1, 4, 150, 2, 0.0, false),     // CUDA: a group of 300 elements, more than the 256 threads of a group
        (1, 4, 20, 2, 100.0, false),    // mean ≫ std: the one-pass statistics must not cancel
        (2, 64, 37, 32, 0.0, true),     // SD's 32 groups, HW not a multiple of 16
        (1, 32, 1030, 8, 0.0, true),    // groups spanning several float chunks
        (2, 16, 64, 4, 100.0, true),    // mean ≫ std over more channels and pixels
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from s in Shapes
        from silu in new[] { false, true }
        select HostScaleIf(s.Host, new TestCaseData(s.N, s.C, s.HW, s.G, s.Offset, silu));

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(int n, int c, int hw, int groups, double offset, bool silu)
    {
        double[] x = TestData.Uniform(1, (long)n * c * hw, 2.0).Select(v => (double)(float)(v + offset)).ToArray();
        double[] gamma = TestData.Uniform(2, c).Select(v => 1 + v).ToArray(), beta = TestData.Uniform(3, c);
        double[] dy = TestData.Uniform(4, x.Length), dgamma0 = TestData.Uniform(5, c), dbeta0 = TestData.Uniform(6, c);
        const float eps = 1e-5f;
        var ey = new double[x.Length];
        var em = new double[n * groups];
        var er = new double[n * groups];
        GroupNormReference.Forward(ey, em, er, x, gamma, beta, n, c, hw, groups, eps, silu);
        var edx = new double[x.Length];
        double[] edg = (double[])dgamma0.Clone(), edb = (double[])dbeta0.Clone();
        GroupNormReference.Backward(edx, edg, edb, dy, x, em, er, gamma, beta, n, c, hw, groups, silu);

        DeviceBuffer y = Zeros(x.Length), mean = Zeros(n * groups), rstd = Zeros(n * groups), bx = Buf(x), bg = Buf(gamma), bb = Buf(beta);
        Backend.GroupNorm(y, mean, rstd, bx, bg, bb, n, c, hw, groups, eps, silu);
        Close.Assert(Read(y), ey, ForwardTol, ForwardTol, "y");
        Close.Assert(Read(mean), em, ForwardTol, ForwardTol, "mean");
        Close.Assert(Read(rstd), er, ForwardTol, ForwardTol, "rstd");

        DeviceBuffer dx = Zeros(x.Length), dg = Buf(dgamma0), db = Buf(dbeta0);
        Backend.GroupNormBackward(dx, dg, db, Buf(dy), bx, mean, rstd, bg, bb, n, c, hw, groups, silu);
        Close.Assert(Read(dx), edx, BackwardAtol, BackwardRtol, "dx");
        Close.Assert(Read(dg), edg, BackwardAtol, BackwardRtol, "dgamma (accumulated)");
        Close.Assert(Read(db), edb, BackwardAtol, BackwardRtol, "dbeta (accumulated)");
    }

    [Test]
    public void RejectsBadArguments()
    {
        DeviceBuffer x = Zeros(24), y = Zeros(24), m = Zeros(2), r = Zeros(2), g = Zeros(6), b = Zeros(6);
        Throws("group norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 4, 1e-5f, false)); // 6 % 4 != 0
        Throws("group norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 0, 1e-5f, false));
        Throws("group norm", () => Backend.GroupNorm(y, m, r, x, g, b, 1, 6, 4, 2, -1f, true));
        Throws("group norm", () => Backend.GroupNorm(y, m, r, x, Zeros(5), b, 1, 6, 4, 2, 1e-5f, false));
        Throws("group norm", () => Backend.GroupNorm(y, m, r, Zeros(24, DType.I32), g, b, 1, 6, 4, 2, 1e-5f, true));
        Throws("group norm backward", () => Backend.GroupNormBackward(Zeros(23), g, b, y, x, m, r, g, b, 1, 6, 4, 2, false));
        Throws("group norm backward", () => Backend.GroupNormBackward(y, g, b, y, x, Zeros(3), r, g, b, 1, 6, 4, 2, false));
        Throws("group norm backward", () => Backend.GroupNormBackward(y, g, b, y, x, m, r, g, Zeros(5), 1, 6, 4, 2, true));
    }

    static void Throws(string op, TestDelegate call) =>
        Assert.That(Assert.Throws<ArgumentException>(call)!.Message, Does.StartWith(op + ":"));
}

[TestFixture(false)]
[TestFixture(true)]
public class GroupNormGradChecks(bool silu)
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
            GroupNormReference.Forward(y, new double[n * groups], new double[n * groups], t[0], t[1], t[2], n, c, hw, groups, eps, silu);
            return y;
        }, (t, dy) =>
        {
            double[] mean = new double[n * groups], rstd = new double[n * groups];
            GroupNormReference.Forward(new double[t[0].Length], mean, rstd, t[0], t[1], t[2], n, c, hw, groups, eps, silu);
            double[] dx = new double[t[0].Length], dg = new double[c], db = new double[c];
            GroupNormReference.Backward(dx, dg, db, dy, t[0], mean, rstd, t[1], t[2], n, c, hw, groups, silu);
            return [dx, dg, db];
        }, $"group_norm{(silu ? "+silu" : "")} n={n} c={c} hw={hw} g={groups}");
    }
}
