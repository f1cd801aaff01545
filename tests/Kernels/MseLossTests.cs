// Tests of MseLoss/MseLossBackward on every backend, and a finite-difference check of the gradient.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class MseLossTests(string backend) : BackendTest(backend)
{
    // The loss: f32 differences and squares (two roundings each, no cancellation in the positive sum), summed in double.
    const double LossRtol = 1e-6;
    // The gradient: a difference and one multiply by 2·gradLoss/n, each one f32 rounding.
    const double GradRtol = 1e-6, GradAtol = 1e-12;

    [TestCase(1)]
    [TestCase(15)]
    [TestCase(17)]
    [TestCase(1000)]
    [TestCase(3001)]                            // CUDA: three level-1 groups of the two-level sum
    [TestCase(100003, Category = HostScale)]
    public void MatchesReference(int n)
    {
        var a = TestData.Uniform(1, n, 2);
        var b = TestData.Uniform(2, n, 2);
        var loss = Zeros(1);
        Backend.MseLoss(loss, Buf(a), Buf(b), n);
        Close.Assert(Read(loss), [MseLossReference.Forward(a, b)], 0, LossRtol, $"loss n={n}");

        var expected = new double[n];
        MseLossReference.Backward(expected, a, b, 0.7f);
        var da = Zeros(n);
        Backend.MseLossBackward(da, Buf(a), Buf(b), 0.7f, n);
        Close.Assert(Read(da), expected, GradAtol, GradRtol, $"da n={n}");
    }

    [Test]
    public void BadArguments()
    {
        Expect("mse loss", () => Backend.MseLoss(Zeros(2), Zeros(5), Zeros(5), 5));
        Expect("mse loss", () => Backend.MseLoss(Zeros(1), Zeros(5), Zeros(4), 5));
        Expect("mse loss", () => Backend.MseLoss(Zeros(1), Zeros(5, DType.F16), Zeros(5), 5));
        Expect("mse loss", () => Backend.MseLoss(Zeros(1), Zeros(5), Zeros(5), 0));
        Expect("mse loss backward", () => Backend.MseLossBackward(Zeros(4), Zeros(5), Zeros(5), 1, 5));
    }

    static void Expect(string op, TestDelegate call)
    {
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
    }
}

[TestFixture]
public class MseLossGradChecks
{
    [Test]
    public void Backward()
    {
        GradCheck.Check([TestData.Uniform(1, 20), TestData.Uniform(2, 20)],
            inputs => [MseLossReference.Forward(inputs[0], inputs[1])],
            (inputs, dy) => { var da = new double[20]; MseLossReference.Backward(da, inputs[0], inputs[1], dy[0]); return [da, null]; },
            "mse loss");
    }
}
