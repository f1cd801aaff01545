// Mixed precision: dynamic loss scaling (skip on overflow, back off, grow) and autocast's half-precision operands.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

public class GradScalerTests
{
    static float[] Read(IBackend backend, DeviceBuffer buffer)
    {
        var values = new float[buffer.Length];
        backend.Download<float>(values, buffer);
        return values;
    }

    /// <summary>One forward and a backward seeded with <paramref name="seed"/> of an MLP's loss on a fixed batch.</summary>
    static void Backward(IBackend backend, Mlp net, float seed)
    {
        using var scope = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 8, 4);
        var target = Tensor.RandomNormal(backend, 2, 0, 8, 3);
        F.MseLoss(net.Forward(x), target).Backward(seed);
    }

    static (Mlp, ParameterStore) Model(IBackend backend)
    {
        var net = new Mlp(4, 16, 3);
        var store = new ParameterStore(backend, net);
        store.Initialize(seed: 7);
        return (net, store);
    }

    [TestCase(float.PositiveInfinity)]
    [TestCase(float.NaN)]
    public void AnOverflowSkipsTheStepHalvesTheScaleAndZeroesTheGradients(float bad)
    {
        using var backend = Backends.Create("cpu");
        var (net, store) = Model(backend);
        using var _store = store;
        using var adamw = new AdamW(store, 1e-2f);
        var scaler = new GradScaler();
        Backward(backend, net, scaler.Scale);
        var grads = Read(backend, store.Grads);
        grads[5] = bad;
        backend.Upload<float>(store.Grads, grads);
        float[] before = Read(backend, store.Values);

        var result = scaler.Step(adamw);

        Assert.That(result.Skipped, Is.True);
        Assert.That(scaler.Scale, Is.EqualTo(32768f));
        Assert.That(Read(backend, store.Values), Is.EqualTo(before), "weights untouched");
        Assert.That(Read(backend, store.Grads), Is.All.EqualTo(0f), "gradients zeroed");
        Assert.That(adamw.StepCount, Is.EqualTo(0));
        Assert.That(Read(backend, adamw.M[0]).Concat(Read(backend, adamw.V[0])), Is.All.EqualTo(0f), "moments untouched");
    }

    [Test]
    public void CleanStepsGrowTheScaleEveryGrowthInterval()
    {
        using var backend = Backends.Create("cpu");
        var (net, store) = Model(backend);
        using var _store = store;
        using var sgd = new Sgd(store, 1e-3f);
        var scaler = new GradScaler(initScale: 256f, growthInterval: 3);
        for (int step = 1; step <= 7; step++)
        {
            Backward(backend, net, scaler.Scale);
            Assert.That(scaler.Step(sgd).Skipped, Is.False);
            store.ZeroGrad();
            Assert.That(scaler.Scale, Is.EqualTo(256f * (1 << (step / 3))), $"after {step} clean steps");
            Assert.That(scaler.CleanSteps, Is.EqualTo(step % 3));
        }
        Assert.That(sgd.StepCount, Is.EqualTo(7));
    }

    [Test]
    public void AScaledStepEqualsTheUnscaledStepBitForBitAndClipsOnTheUnscaledNorm()
    {
        // A power-of-two scale multiplies every gradient exactly and 1/S undoes it exactly, so both runs round alike.
        float[] Run(bool scaled, out float norm)
        {
            using var backend = Backends.Create("cpu");
            var (net, store) = Model(backend);
            using var _store = store;
            using var adamw = new AdamW(store, 1e-2f);
            var scaler = new GradScaler(initScale: 1024f);
            norm = 0;
            for (int step = 0; step < 3; step++)
            {
                Backward(backend, net, scaled ? scaler.Scale : 1f);
                if (scaled) norm = scaler.Step(adamw, maxGradNorm: 0.05f).GradNorm;
                else
                {
                    norm = adamw.ClipGradNorm(0.05f);
                    adamw.Step();
                }
                store.ZeroGrad();
            }
            return Read(backend, store.Values);
        }
        var plain = Run(false, out float plainNorm);
        var scaled = Run(true, out float scaledNorm);
        Assert.That(scaledNorm, Is.EqualTo(plainNorm));
        Assert.That(plainNorm, Is.GreaterThan(0.05f), "the clip must be active for this test to see it");
        Assert.That(scaled, Is.EqualTo(plain));
    }

    [Test]
    public void StepClipsToNormOneByDefaultAsClipGradNormDoes()
    {
        // Gradients of norm ≈ 6.6, given multiplied by a power-of-two scale or not: the scaled step on g·S and the
        // plain one on g round alike (see above), so equal defaults give bit-identical weights.
        const float s = 1024f;
        float[] Run(float gradScale, Action<Optimizer> step)
        {
            using var backend = Backends.Create("cpu");
            var (_, store) = Model(backend);
            using var _store = store;
            using var adamw = new AdamW(store, 1e-2f);
            backend.Upload<float>(store.Grads, TestData.ToFloat(TestData.Uniform(8, store.TrainableLength, gradScale)));
            step(adamw);
            return Read(backend, store.Values);
        }
        float norm = 0;
        var scalerDefault = Run(s, o => norm = new GradScaler(initScale: s).Step(o).GradNorm);
        var clipDefault = Run(1f, o => { o.ClipGradNorm(); o.Step(); });
        var unclipped = Run(s, o => new GradScaler(initScale: s).Step(o, maxGradNorm: null));
        Assert.That(norm, Is.GreaterThan(1f), "the norm must exceed 1 for the default limit to act");
        Assert.That(scalerDefault, Is.EqualTo(clipDefault), "GradScaler.Step and Optimizer.ClipGradNorm default to the same limit");
        Assert.That(scalerDefault, Is.EqualTo(Run(s, o => new GradScaler(initScale: s).Step(o, maxGradNorm: 1f))), "the limit is 1");
        Assert.That(scalerDefault, Is.Not.EqualTo(unclipped), "the default clips");
    }

    [Test]
    public void F16GradientsOverflowAtTheInitialScaleThenTheScalerBacksOffAndSteps()
    {
        // Under f16 autocast, Linear's backward rounds dy to f16: a seed of 65536 on Σy gives dy = 65536 > 65504 → Inf.
        using var backend = Backends.Create("cpu");
        var (net, store) = Model(backend);
        using var _store = store;
        using var sgd = new Sgd(store, 1e-3f);
        var scaler = new GradScaler();
        bool Step()
        {
            using (var scope = new TensorScope())
            {
                Tensor loss;
                using (Autocast.Enable(DType.F16)) loss = F.Sum(net.Forward(Tensor.RandomNormal(backend, 1, 0, 8, 4)));
                loss.Backward(scaler.Scale);
            }
            bool skipped = scaler.Step(sgd).Skipped;
            store.ZeroGrad();
            return skipped;
        }
        Assert.That(Step(), Is.True, "65536 overflows f16");
        Assert.That(scaler.Scale, Is.EqualTo(32768f));
        Assert.That(Step(), Is.False, "32768 fits");
        Assert.That(sgd.StepCount, Is.EqualTo(1));
    }
}

public class AutocastTests
{
    static float[] RoundHost(float[] values, DType dtype) => values.Select(v => dtype == DType.F16 ? (float)(Half)v : ToBf16(v)).ToArray();

    static float ToBf16(float v)
    {   // round to nearest even on the upper 16 bits (finite inputs)
        uint bits = BitConverter.SingleToUInt32Bits(v);
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000;
        return BitConverter.UInt32BitsToSingle(bits);
    }

    static float[] Values(int seed, int n) => TestData.ToFloat(TestData.Uniform(seed, n, 3.0));

    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void LinearComputesOnRoundedOperandsAndRoundsTheIncomingGradient(DType half)
    {
        using var backend = Backends.Create("cpu");
        float[] xv = Values(1, 6 * 5), wv = Values(2, 4 * 5), bv = Values(3, 4), upstream = Values(4, 6 * 4);

        (float[] Y, float[] Dx, float[] Dw, float[] Db) Run(bool autocast, DType? roundOnHost)
        {
            using var scope = new TensorScope();
            float[] R(float[] v) => roundOnHost is { } d ? RoundHost(v, d) : v;
            var x = Tensor.FromArray(backend, R(xv), 6, 5);
            var w = Tensor.FromArray(backend, R(wv), 4, 5);
            var b = Tensor.FromArray(backend, bv, 4);
            foreach (var t in new[] { x, w, b }) t.RequiresGrad = true;
            Tensor y;
            using (Autocast.Enable(autocast ? half : DType.F32)) y = F.Linear(x, w, b);
            F.Sum(F.Mul(y, Tensor.FromArray(backend, R(upstream), 6, 4))).Backward();   // dy = upstream, outside autocast
            return (y.ToArray(), x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray());
        }

        var auto = Run(autocast: true, roundOnHost: null);
        var byHand = Run(autocast: false, roundOnHost: half);
        var f32 = Run(autocast: false, roundOnHost: null);
        Assert.That(auto.Y, Is.EqualTo(byHand.Y), "forward on rounded x and W, f32 bias and accumulation");
        Assert.That(auto.Dx, Is.EqualTo(byHand.Dx), "dx from rounded dy and W");
        Assert.That(auto.Dw, Is.EqualTo(byHand.Dw), "dW from rounded dy and x");
        Assert.That(auto.Db, Is.EqualTo(byHand.Db), "db from rounded dy");
        Assert.That(auto.Y, Is.Not.EqualTo(f32.Y), "the inputs carry more bits than the half type, so rounding must show");
    }

    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void MatMulComputesOnRoundedOperands(DType half)
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        float[] av = Values(5, 2 * 3 * 4), bv = Values(6, 2 * 4 * 5);
        Tensor auto;
        using (Autocast.Enable(half)) auto = F.MatMul(Tensor.FromArray(backend, av, 2, 3, 4), Tensor.FromArray(backend, bv, 2, 4, 5));
        var byHand = F.MatMul(Tensor.FromArray(backend, RoundHost(av, half), 2, 3, 4), Tensor.FromArray(backend, RoundHost(bv, half), 2, 4, 5));
        Assert.That(auto.ToArray(), Is.EqualTo(byHand.ToArray()));
        Assert.That(Autocast.ComputeType, Is.Null, "the mode ends with its block");
    }

    /// <summary>
    /// The training sanity check of OptimizerTests (AdamW fits a two-layer MLP to a fixed batch, loss down 100× within
    /// 500 steps) with every GEMM under autocast: bf16 as diffusers' --mixed_precision bf16 runs it (no loss scaling:
    /// bf16 has f32's range), f16 with the GradScaler. 100× holds for bf16 too: it rounds GEMM operands to 8
    /// significant bits (relative error ≤ 2⁻⁹), so outputs of size ~1 carry noise of ~1e-3 and the loss of this
    /// unit-variance target floors near 1e-6 to 1e-5, far below first/100 ≈ 1e-2. Measured on the cpu tier: both reach
    /// 100× at step 49; the floors are about 3e-6 (bf16) and 3e-8 (f16), the 64× of bf16's three fewer mantissa bits.
    /// </summary>
    [TestCase(DType.BF16)]
    [TestCase(DType.F16)]
    public void AdamWFitsAnMlpToAFixedBatchUnderAutocast(DType half)
    {
        const int maxSteps = 500;
        using var backend = Backends.Create("cpu");
        using var batch = new TensorScope();
        var net = new Mlp(8, 64, 4);
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 3);
        using var adamw = new AdamW(store, 1e-2f);
        var scaler = new GradScaler();
        var x = Tensor.RandomNormal(backend, 10, 0, 16, 8);
        var target = Tensor.RandomNormal(backend, 11, 0, 16, 4);
        float first = float.NaN;
        for (int step = 0; step < maxSteps; step++)
        {
            using var scope = new TensorScope();
            Tensor loss;
            using (Autocast.Enable(half)) loss = F.MseLoss(net.Forward(x), target);
            float value = loss.Item();
            Assert.That(value, Is.Not.NaN.And.Not.EqualTo(float.PositiveInfinity), $"loss at step {step}");
            if (step == 0) first = value;
            else if (value < first / 100)
            {
                TestContext.Out.WriteLine($"{half.Name()} autocast: loss {first:G4} → {value:G4} in {step} AdamW steps");
                return;
            }
            if (half == DType.F16)
            {
                loss.Backward(scaler.Scale);
                scaler.Step(adamw);
            }
            else
            {
                loss.Backward();
                adamw.ClipGradNorm();
                adamw.Step();
            }
            store.ZeroGrad();
        }
        Assert.Fail($"{half.Name()} autocast: loss did not drop 100× within {maxSteps} steps (from {first})");
    }

    [Test]
    public void OnlyHalfTypesAreComputeTypes() =>
        Assert.That(() => Autocast.Enable(DType.I32), Throws.ArgumentException.With.Message.Contains("f16, bf16 or f32"));
}
