// Softmax on every backend against the double reference (including ±80 inputs), bad arguments, and finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class SoftmaxTests(string backend) : BackendTest(backend)
{
    // y in [0, 1]: the cpu exp is within ~2 ulp, the row sum is f32 over ≤ 1024 terms; x·log2e − max·log2e loses
    // ~|x|·6e-8 of the exponent, ~5e-6 relative at |x| = 80.
    const double ForwardAtol = 1e-6, ForwardRtol = 1e-5;
    // dx = y·(dy − Σ dy·y): one f32 dot product of ≤ 1024 terms.
    const double BackwardAtol = 1e-6, BackwardRtol = 1e-5;

    [TestCase(1, 1, 1.0)]
    [TestCase(3, 1, 1.0)]      // rows of one column: every probability is 1
    [TestCase(3, 5, 1.0)]
    [TestCase(7, 17, 4.0)]
    [TestCase(4, 77, 1.0)]     // CUDA: a row longer than one warp
    [TestCase(2, 1024, 3.0)]   // CUDA: 4 columns per thread of a 256-thread group
    [TestCase(5, 40, 80.0)]    // ±80: exp would overflow f32 without subtracting the row max
    [TestCase(300, 33, 2.0, Category = HostScale)]   // enough rows to run in parallel
    public void MatchesReference(int rows, int cols, double scale)
    {
        double[] x = TestData.Uniform(1, (long)rows * cols, scale), dy = TestData.Uniform(2, x.Length);
        double[] ey = new double[x.Length], edx = new double[x.Length];
        SoftmaxReference.Forward(ey, x, rows, cols);
        SoftmaxReference.Backward(edx, dy, ey, rows, cols);

        DeviceBuffer y = Zeros(x.Length), dx = Zeros(x.Length);
        Backend.Softmax(y, Buf(x), rows, cols);
        Close.Assert(Read(y), ey, ForwardAtol, ForwardRtol, "y");
        Backend.SoftmaxBackward(dx, Buf(dy), Buf(ey), rows, cols);
        Close.Assert(Read(dx), edx, BackwardAtol, BackwardRtol, "dx");
    }

    [Test]
    public void RejectsBadArguments()
    {
        DeviceBuffer a = Zeros(12), b = Zeros(12);
        Throws("softmax", () => Backend.Softmax(a, b, 0, 12));
        Throws("softmax", () => Backend.Softmax(a, Zeros(11), 3, 4));
        Throws("softmax backward", () => Backend.SoftmaxBackward(a, b, Zeros(12, DType.I32), 3, 4));
    }

    static void Throws(string op, TestDelegate call) =>
        Assert.That(Assert.Throws<ArgumentException>(call)!.Message, Does.StartWith(op + ":"));
}

[TestFixture]
public class SoftmaxGradChecks
{
    [TestCase(3, 4)]
    [TestCase(1, 1)]
    [TestCase(2, 9)]
    public void Backward(int rows, int cols)
    {
        GradCheck.Check([TestData.Uniform(1, rows * cols, 3.0)], t =>
        {
            var y = new double[t[0].Length];
            SoftmaxReference.Forward(y, t[0], rows, cols);
            return y;
        }, (t, dy) =>
        {
            var y = new double[t[0].Length];
            SoftmaxReference.Forward(y, t[0], rows, cols);
            var dx = new double[y.Length];
            SoftmaxReference.Backward(dx, dy, y, rows, cols);
            return [dx];
        }, $"softmax rows={rows} cols={cols}");
    }
}
