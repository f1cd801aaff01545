// AdamW and 8-bit AdamW on every backend against the double reference: bias correction, weight decay, grad scale, codes.
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

    // ---- 8-bit AdamW ----

    // Each step starts every tier from the reference's state (f32 params and absmax, the same codes), so one step's
    // error is measured. Params and absmax take the f32 bounds above: the dequantised moments are exact products of
    // f32 values on both sides. A code can differ where the new moment over its absmax lies within the f32 step's
    // error (~1e-7 of the absmax) of a midpoint between two map entries: then by one, and rarely (≤ 1 % here).
    const double CodeMismatchShare = 0.01;
    // The m absmax is the largest |β1·m + (1 − β1)·g| of the block, with |m| up to the old absmax (~0.3 here): a few f32
    // roundings of that magnitude, on top of MAtol.
    const double AbsmaxRtol = 3e-7;

    [TestCase(1, 0.0f, 1.0f)]
    [TestCase(300, 0.01f, 1.0f)]            // a whole block and a partial one
    [TestCase(1037, 0.1f, 0.5f)]
    [TestCase(5000, 0.01f, 1f / 1024, Category = HostScale)]      // a loss-scale-like GradScale
    [TestCase(100_003, 0.01f, 1f / 1024, Category = HostScale)]   // several chunks over cores
    public void EightBitStepsMatchReference(int n, float weightDecay, float gradScale)
    {
        int blocks = (int)DynamicMap.Blocks(n);
        double[] p = TestData.Uniform(1, n), mMax = new double[blocks], vMax = new double[blocks];
        byte[] m = new byte[n], v = new byte[n];
        DeviceBuffer bp = Zeros(n), bm = Zeros(n, DType.U8), bmMax = Zeros(blocks), bv = Zeros(n, DType.U8), bvMax = Zeros(blocks);
        for (int step = 1; step <= 5; step++)
        {
            var s = new AdamWStep(Lr: 1e-3f * step, Step: step, WeightDecay: weightDecay, GradScale: gradScale);
            double[] g = TestData.Uniform(10 + step, n, step == 3 ? 1e-6 : 1 / gradScale);   // step 3: near-zero gradients
            for (int i = 0; i < n; i++) g[i] *= Math.Pow(10, -(i / DynamicMap.BlockSize % 4));   // blocks of different scales
            Round(p); Round(mMax); Round(vMax);
            Backend.Upload<float>(bp, TestData.ToFloat(p));
            Backend.Upload<byte>(bm, m);
            Backend.Upload<float>(bmMax, TestData.ToFloat(mMax));
            Backend.Upload<byte>(bv, v);
            Backend.Upload<float>(bvMax, TestData.ToFloat(vMax));
            AdamW8bitReference.Step(p, g, m, mMax, v, vMax, s, n);
            Backend.AdamW8bit(bp, Buf(g), bm, bmMax, bv, bvMax, s, n);
            Close.Assert(Read(bp), p, ParamAtol, 0, $"param after step {step}");
            Close.Assert(Read(bmMax), mMax, MAtol, AbsmaxRtol, $"m absmax after step {step}");
            Close.Assert(Read(bvMax), vMax, VAtol, VRtol, $"v absmax after step {step}");
            AssertCodesClose(ReadCodes(bm, n), m, $"m codes after step {step}");
            AssertCodesClose(ReadCodes(bv, n), v, $"v codes after step {step}");
        }
    }

    [Test]
    public void EightBitCodesAreTheNearestMapEntries()
    {
        // With β1 = β2 = 0 the new moments are g and g², and a first element of 1 in every block makes both absmax 1, so
        // the codes quantise g and g² themselves: every midpoint of both maps is hit at and one ulp around.
        var targets = new List<float>();
        foreach (float mid in DynamicMap.SignedMidpoints) targets.AddRange([MathF.BitDecrement(mid), mid, MathF.BitIncrement(mid)]);
        targets.AddRange(DynamicMap.Signed);
        foreach (float mid in DynamicMap.UnsignedMidpoints)
        {
            float root = MathF.Sqrt(mid);
            targets.AddRange([MathF.BitDecrement(root), root, -MathF.BitIncrement(root)]);
        }
        targets.AddRange([0f, -0f, 1e-30f, -1e-30f, float.Epsilon]);
        var random = new Random(3);
        for (int i = 0; i < 500; i++) targets.Add((float)((random.Next(2) * 2 - 1) * Math.Pow(10, -9 * random.NextDouble())));
        const int perBlock = DynamicMap.BlockSize - 1;
        int n = (targets.Count + perBlock - 1) / perBlock * DynamicMap.BlockSize;
        var g = new float[n];
        for (int i = 0, t = 0; i < n; i++) g[i] = i % DynamicMap.BlockSize == 0 ? 1f : t < targets.Count ? targets[t++] : 0f;

        int blocks = n / DynamicMap.BlockSize;
        DeviceBuffer bm = Zeros(n, DType.U8), bv = Zeros(n, DType.U8), bmMax = Zeros(blocks), bvMax = Zeros(blocks);
        Backend.AdamW8bit(Zeros(n), Buf(g), bm, bmMax, bv, bvMax, new AdamWStep(0f, 1, Beta1: 0f, Beta2: 0f), n);
        Assert.That(Read(bmMax), Is.All.EqualTo(1f), "m absmax");
        Assert.That(Read(bvMax), Is.All.EqualTo(1f), "v absmax");
        byte[] m = ReadCodes(bm, n), v = ReadCodes(bv, n);
        for (int i = 0; i < n; i++)
        {
            // The reference squares in double; the f32 tiers round g² to f32 first, and quantise that.
            double square = BackendName == "reference" ? (double)g[i] * g[i] : g[i] * g[i];
            Assert.That(m[i], Is.EqualTo(DynamicMap.Quantize(DynamicMap.SignedMidpoints, g[i])), $"m code of g = {g[i]:R}");
            Assert.That(v[i], Is.EqualTo(DynamicMap.Quantize(DynamicMap.UnsignedMidpoints, square)), $"v code of g² = {square:R}");
        }
    }

    [Test]
    public void EightBitBadArgumentsNameTheOp()
    {
        var s = new AdamWStep(1e-3f, 1);
        const int n = 300;
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.AdamW8bit(Zeros(n), Zeros(n), Zeros(n), Zeros(2), Zeros(n, DType.U8), Zeros(2), s, n),
                Throws.ArgumentException.With.Message.Contains("adamw 8-bit").And.Message.Contains("m is f32"));
            Assert.That(() => Backend.AdamW8bit(Zeros(n), Zeros(n), Zeros(n, DType.U8), Zeros(1), Zeros(n, DType.U8), Zeros(2), s, n),
                Throws.ArgumentException.With.Message.Contains("m absmax"));
            Assert.That(() => Backend.AdamW8bit(Zeros(n), Zeros(n), Zeros(n, DType.U8), Zeros(2), Zeros(n, DType.U8), Zeros(2), s with { Step = 0 }, n),
                Throws.ArgumentException.With.Message.Contains("adamw 8-bit"));
            Assert.That(() => Backend.Fill(Zeros(4, DType.U8), 0f), Throws.ArgumentException.With.Message.Contains("u8"));
        });
    }

    byte[] ReadCodes(DeviceBuffer buffer, int n)
    {
        var codes = new byte[n];
        Backend.Download<byte>(codes, buffer);
        return codes;
    }

    static void AssertCodesClose(byte[] actual, byte[] expected, string what)
    {
        int differ = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (actual[i] == expected[i]) continue;
            Assert.That(Math.Abs(actual[i] - expected[i]), Is.EqualTo(1), $"{what}: code {i} is {actual[i]}, expected {expected[i]}");
            differ++;
        }
        Assert.That(differ, Is.LessThanOrEqualTo(Math.Max(1, (int)(CodeMismatchShare * actual.Length))), $"{what}: codes differing by one");
    }
}
