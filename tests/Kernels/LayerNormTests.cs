// Layer norm on every backend against the double reference, bad arguments, and finite-difference checks of the backward.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class LayerNormTests(string backend) : BackendTest(backend)
{
    // Forward: double (cpu: chunked float) statistics, f32 (x − mean)·rstd·gamma + beta: a few ulp of |y| ≲ 8.
    const double ForwardTol = 2e-5;
    // Backward: per-row sums over dim ≤ 1000 and dgamma/dbeta sums over ≤ 77 rows, in f32 lanes.
    const double BackwardAtol = 1e-4, BackwardRtol = 1e-4;

    [TestCase(1, 1, 0.0)]      // dim 1: var = 0, xhat = 0
    [TestCase(3, 1, 0.0)]      // dim 1 over several rows (CUDA: a group per row)
    [TestCase(5, 17, 0.0)]
    [TestCase(11, 40, 0.0)]    // CUDA: rows past one warp, more rows than the 8 of a dgamma tile, columns past its 32
    [TestCase(33, 320, 0.0, Category = HostScale)]   // more rows than one task (32)
    [TestCase(77, 768, 0.0, Category = HostScale)]   // CLIP text encoder
    [TestCase(3, 1000, 50.0)]  // mean ≫ std; CUDA: rows longer than the 256 threads of a group
    public void MatchesReference(int rows, int dim, double offset)
    {
        double[] x = TestData.Uniform(1, (long)rows * dim, 2.0).Select(v => (double)(float)(v + offset)).ToArray();
        double[] gamma = TestData.Uniform(2, dim).Select(v => 1 + v).ToArray(), beta = TestData.Uniform(3, dim);
        double[] dy = TestData.Uniform(4, x.Length), dgamma0 = TestData.Uniform(5, dim), dbeta0 = TestData.Uniform(6, dim);
        const float eps = 1e-5f;
        double[] ey = new double[x.Length], em = new double[rows], er = new double[rows];
        LayerNormReference.Forward(ey, em, er, x, gamma, beta, rows, dim, eps);
        var edx = new double[x.Length];
        double[] edg = (double[])dgamma0.Clone(), edb = (double[])dbeta0.Clone();
        LayerNormReference.Backward(edx, edg, edb, dy, x, em, er, gamma, rows, dim);

        DeviceBuffer y = Zeros(x.Length), mean = Zeros(rows), rstd = Zeros(rows), bx = Buf(x), bg = Buf(gamma);
        Backend.LayerNorm(y, mean, rstd, bx, bg, Buf(beta), rows, dim, eps);
        Close.Assert(Read(y), ey, ForwardTol, ForwardTol, "y");
        Close.Assert(Read(mean), em, ForwardTol, ForwardTol, "mean");
        // dim 1 gives rstd = 1/√eps ≈ 316: relative tolerance covers it.
        Close.Assert(Read(rstd), er, ForwardTol, ForwardTol, "rstd");

        DeviceBuffer dx = Zeros(x.Length), dg = Buf(dgamma0), db = Buf(dbeta0);
        Backend.LayerNormBackward(dx, dg, db, Buf(dy), bx, mean, rstd, bg, rows, dim);
        Close.Assert(Read(dx), edx, BackwardAtol, BackwardRtol, "dx");
        Close.Assert(Read(dg), edg, BackwardAtol, BackwardRtol, "dgamma (accumulated)");
        Close.Assert(Read(db), edb, BackwardAtol, BackwardRtol, "dbeta (accumulated)");
    }

    [Test]
    public void RejectsBadArguments()
    {
        DeviceBuffer x = Zeros(12), y = Zeros(12), m = Zeros(3), r = Zeros(3), g = Zeros(4), b = Zeros(4);
        Throws("layer norm", () => Backend.LayerNorm(y, m, r, x, g, b, 3, 0, 1e-5f));
        Throws("layer norm", () => Backend.LayerNorm(y, m, r, x, Zeros(3), b, 3, 4, 1e-5f));
        Throws("layer norm", () => Backend.LayerNorm(y, Zeros(4), r, x, g, b, 3, 4, 1e-5f));
        Throws("layer norm", () => Backend.LayerNorm(y, m, r, x, g, b, 3, 4, float.NaN));
        Throws("layer norm backward", () => Backend.LayerNormBackward(y, g, Zeros(4, DType.I32), y, x, m, r, g, 3, 4));
    }

    static void Throws(string op, TestDelegate call) =>
        Assert.That(Assert.Throws<ArgumentException>(call)!.Message, Does.StartWith(op + ":"));
}

[TestFixture]
public class LayerNormGradChecks
{
    [TestCase(3, 5)]
    [TestCase(1, 2)]
    [TestCase(2, 17)]
    public void Backward(int rows, int dim)
    {
        double[][] inputs = [TestData.Uniform(1, rows * dim), TestData.Uniform(2, dim).Select(v => 1 + v).ToArray(), TestData.Uniform(3, dim)];
        const double eps = 1e-3;
        GradCheck.Check(inputs, t =>
        {
            var y = new double[t[0].Length];
            LayerNormReference.Forward(y, new double[rows], new double[rows], t[0], t[1], t[2], rows, dim, eps);
            return y;
        }, (t, dy) =>
        {
            double[] mean = new double[rows], rstd = new double[rows];
            LayerNormReference.Forward(new double[t[0].Length], mean, rstd, t[0], t[1], t[2], rows, dim, eps);
            double[] dx = new double[t[0].Length], dg = new double[dim], db = new double[dim];
            LayerNormReference.Backward(dx, dg, db, dy, t[0], mean, rstd, t[1], rows, dim);
            return [dx, dg, db];
        }, $"layer_norm rows={rows} dim={dim}");
    }
}
