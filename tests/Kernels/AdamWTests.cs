// AdamW on every backend against the double reference over several steps: bias correction, weight decay, grad scale.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class AdamWTests(string backend) : BackendTest(backend)
{
    // The Cpu tier runs the step in f32, from the same f32 state as the reference (re-uploaded each step, so one
    // step's error is measured, not a drift). Param: |p| < 2, and p·decay, the subtraction and the reference's own
    // rounding are each half an f32 ulp (1.2e-7 in [1, 2)); the update's relative error (~1e-6) times lr ≤ 5e-3 is
    // far smaller. m = β1·m + (1−β1)·g can cancel, so its error is absolute: a few roundings of terms ≤ 0.1 (scaled
    // |g| ≤ 1), 6e-9 each. v's terms are both positive: relative error only.
    const double ParamAtol = 2.5e-7, MAtol = 3e-8, VRtol = 2e-6, VAtol = 1e-12;

    [TestCase(1, 0.0f, 1.0f)]
    [TestCase(37, 0.01f, 1.0f)]
    [TestCase(1037, 0.1f, 0.5f)]
    [TestCase(100_003, 0.01f, 1f / 1024, Category = HostScale)]   // several chunks over cores; a loss-scale-like GradScale
    [TestCase(3001, 0.01f, 1f / 1024)]      // a loss-scale-like GradScale; CUDA: several groups of threads
    public void StepsMatchReference(int n, float weightDecay, float gradScale)
    {
        double[] p = TestData.Uniform(1, n), m = new double[n], v = new double[n];
        DeviceBuffer bp = Buf(p), bm = Zeros(n), bv = Zeros(n);
        for (int step = 1; step <= 5; step++)
        {
            var s = new AdamWStep(Lr: 1e-3f * step, Step: step, WeightDecay: weightDecay, GradScale: gradScale);
            double[] g = TestData.Uniform(10 + step, n, step == 3 ? 1e-6 : 1 / gradScale);   // step 3: near-zero gradients
            Backend.Upload<float>(bp, TestData.ToFloat(p));
            Backend.Upload<float>(bm, TestData.ToFloat(m));
            Backend.Upload<float>(bv, TestData.ToFloat(v));
            AdamWReference.Step(p, g, m, v, s, n);
            Backend.AdamW(bp, Buf(g), bm, bv, s, n);
            Round(p); Round(m); Round(v);                // the buffers hold f32
            Close.Assert(Read(bp), p, ParamAtol, 0, $"param after step {step}");
            Close.Assert(Read(bm), m, MAtol, 0, $"m after step {step}");
            Close.Assert(Read(bv), v, VAtol, VRtol, $"v after step {step}");
        }
    }

    static void Round(double[] values)
    {
        for (int i = 0; i < values.Length; i++) values[i] = (float)values[i];
    }

    [Test]
    public void FirstStepMovesByLrTimesSign()
    {
        // Step 1 from m = v = 0: m̂ = g and v̂ = g², so p ← p(1 − lr·wd) − lr·g/(|g| + eps): PyTorch's first AdamW step.
        const float lr = 0.01f, wd = 0.1f;
        var s = new AdamWStep(lr, 1, WeightDecay: wd, GradScale: 2f);
        var p = Buf(new float[] { 1, -2, 0.5f });
        Backend.AdamW(p, Buf(new float[] { 3, -0.25f, 1e-9f }), Zeros(3), Zeros(3), s, 3);
        double decay = 1 - (double)lr * wd;
        double[] g = [6, -0.5, 2e-9];
        double[] expected = [1 * decay - lr * g[0] / (6 + 1e-8), -2 * decay - lr * g[1] / (0.5 + 1e-8), 0.5 * decay - lr * g[2] / (2e-9 + 1e-8)];
        Close.Assert(Read(p), expected, ParamAtol, 0, "first step");
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        var s = new AdamWStep(1e-3f, 1);
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.AdamW(Zeros(4), Zeros(4), Zeros(4), Zeros(3), s, 4), Throws.ArgumentException.With.Message.Contains("adamw"));
            Assert.That(() => Backend.AdamW(Zeros(4), Zeros(4, DType.F16), Zeros(4), Zeros(4), s, 4), Throws.ArgumentException.With.Message.Contains("adamw"));
            Assert.That(() => Backend.AdamW(Zeros(4), Zeros(4), Zeros(4), Zeros(4), s with { Step = 0 }, 4), Throws.ArgumentException.With.Message.Contains("adamw"));
            Assert.That(() => Backend.AdamW(Zeros(4), Zeros(4), Zeros(4), Zeros(4), s with { Beta2 = 1f }, 4), Throws.ArgumentException.With.Message.Contains("adamw"));
            Assert.That(() => Backend.AdamW(Zeros(4), Zeros(4), Zeros(4), Zeros(4), s with { Eps = 0f }, 4), Throws.ArgumentException.With.Message.Contains("adamw"));
            Assert.That(() => Backend.AdamW(Zeros(0), Zeros(0), Zeros(0), Zeros(0), s, 0), Throws.ArgumentException.With.Message.Contains("adamw"));
        });
    }
}
