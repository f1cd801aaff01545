// The training math of Models: add-noise and targets per sample, the instance/prior split, min-SNR weights, offset noise,
// the low-res augmentation's classes, and a UNet whose instance loss falls on a fixed batch.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Pipeline;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class DenoisingObjectiveTests
{
    static NoiseSchedule Schedule(string prediction = "epsilon") =>
        NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, PredictionType = prediction });

    [Test]
    public void AddNoiseAndTargetsMixEachSampleWithItsOwnTimestep()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var x0 = Tensor.RandomNormal(backend, 1, 0, 2, 3, 4, 4);
        var eps = Tensor.RandomNormal(backend, 2, 0, 2, 3, 4, 4);
        int[] t = [10, 900];
        var v = Schedule("v_prediction");
        var (noisy, velocity) = (v.AddNoise(x0, eps, t).ToArray(), v.Target(x0, eps, t).ToArray());
        var (xs, es) = (x0.ToArray(), eps.ToArray());
        for (int i = 0; i < xs.Length; i++)
        {
            double abar = v.AlphaCumprod(t[i / 48]);
            Assert.That(noisy[i], Is.EqualTo(Math.Sqrt(abar) * xs[i] + Math.Sqrt(1 - abar) * es[i]).Within(1e-5));
            Assert.That(velocity[i], Is.EqualTo(Math.Sqrt(abar) * es[i] - Math.Sqrt(1 - abar) * xs[i]).Within(1e-5));
        }
        Assert.That(Schedule().Target(x0, eps, t).ToArray(), Is.EqualTo(es), "ε-prediction learns the noise itself");
    }

    /// <summary>A "model" that predicts zeros: each sample's MSE is then mean(target²), which the test computes itself.</summary>
    static (DenoisingLoss Loss, float[] Noise, int[] T) ZeroModel(IBackend backend, int instances, LossSettings settings, NoiseSchedule schedule)
    {
        var x0 = Tensor.RandomNormal(backend, 7, 0, 4, 3, 4, 4);
        var noise = new StepNoise(11, 5);
        var loss = DenoisingObjective.Compute(schedule, (x, _) => Tensor.ZerosLike(x), x0, instances, settings, noise);
        return (loss, noise.Normal(backend, StepNoise.NoiseDraw, 4, 3, 4, 4).ToArray(), noise.Integers(StepNoise.TimestepDraw, 4, 1000));
    }

    static double MeanSquare(float[] values, int sample) => values.Skip(sample * 48).Take(48).Average(v => (double)v * v);

    [Test]
    public void TheBatchSplitsIntoInstanceAndPriorTerms()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var (l, eps, _) = ZeroModel(backend, 2, new LossSettings(PriorLossWeight: 0.5), Schedule());
        double instance = (MeanSquare(eps, 0) + MeanSquare(eps, 1)) / 2, prior = (MeanSquare(eps, 2) + MeanSquare(eps, 3)) / 2;
        Assert.That(l.Instance.Item(), Is.EqualTo(instance).Within(1e-5));
        Assert.That(l.Prior!.Item(), Is.EqualTo(prior).Within(1e-5));
        Assert.That(l.Loss.Item(), Is.EqualTo(instance + 0.5 * prior).Within(1e-5));

        var (alone, _, _) = ZeroModel(backend, 4, new LossSettings(), Schedule());
        Assert.That(alone.Prior, Is.Null, "no class rows, no prior term");
    }

    [Test]
    public void MinSnrWeighsEachInstanceSampleAndLeavesThePriorTermAlone()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        foreach (string prediction in new[] { "epsilon", "v_prediction" })
        {
            var schedule = Schedule(prediction);
            var plain = ZeroModel(backend, 2, new LossSettings(), schedule);
            var weighted = ZeroModel(backend, 2, new LossSettings(SnrGamma: 5), schedule);
            var target = schedule.Target(Tensor.RandomNormal(backend, 7, 0, 4, 3, 4, 4), Tensor.FromArray(backend, plain.Noise, 4, 3, 4, 4), plain.T).ToArray();
            double expected = Enumerable.Range(0, 2).Average(i =>
            {
                double snr = schedule.Snr(plain.T[i]);
                return Math.Min(snr, 5) / (prediction == "epsilon" ? snr : snr + 1) * MeanSquare(target, i);
            });
            Assert.That(weighted.Loss.Instance.Item(), Is.EqualTo(expected).Within(1e-5 * expected), prediction);
            Assert.That(weighted.Loss.Prior!.Item(), Is.EqualTo(plain.Loss.Prior!.Item()), prediction);
        }
    }

    [Test]
    public void OffsetNoiseShiftsEachSampleAndChannelByOneConstant()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var x0 = Tensor.Zeros(backend, 2, 3, 4, 4);
        var schedule = Schedule();
        float[]? seen = null;
        DenoisingObjective.Compute(schedule, (x, _) => { seen = x.ToArray(); return Tensor.ZerosLike(x); }, x0, 2,
            new LossSettings(OffsetNoise: true), new StepNoise(1, 0));
        var noise = new StepNoise(1, 0);
        var eps = noise.Normal(backend, StepNoise.NoiseDraw, 2, 3, 4, 4).ToArray();
        var offset = noise.Normal(backend, StepNoise.OffsetNoiseDraw, 2, 3, 1, 1).ToArray();
        int[] t = noise.Integers(StepNoise.TimestepDraw, 2, 1000);
        for (int i = 0; i < eps.Length; i++)   // x0 = 0, so x_t = √(1−ᾱ)·(ε + 0.1·offset)
            Assert.That(seen![i], Is.EqualTo(Math.Sqrt(1 - schedule.AlphaCumprod(t[i / 48])) * (eps[i] + 0.1 * offset[i / 16])).Within(1e-5));
    }

    [Test]
    public void TimestepsAreUniformOverTheTrainingRange()
    {
        var t = new StepNoise(5, 3).Integers(StepNoise.TimestepDraw, 20000, 1000);
        Assert.That(t, Has.All.InRange(0, 999));
        Assert.That(t.Average(), Is.EqualTo(499.5).Within(8), "mean of U{0..999}; 4σ of 20000 draws is about 8");
        Assert.That(t.Distinct().Count(), Is.EqualTo(1000));
    }

    [Test]
    public void NoiseLevelsMapToTheNearestClassOnALogScale()
    {
        var sd = new LowResAugmentation(new SchedulerConfig { BetaStart = 1e-4, BetaEnd = 0.02 }, 1000);   // the x4 upscaler's
        Assert.That(sd.ClassOf(0), Is.Zero);
        Assert.That(sd.ClassOf(1e-5), Is.Zero, "below class 0's variance of 1e-4");
        Assert.That(sd.ClassOf(1e-3), Is.EqualTo(5));
        Assert.That(sd.Variance(5), Is.EqualTo(1e-3).Within(2e-4));
        var fine = new LowResAugmentation(new SchedulerConfig { BetaStart = 1e-6, BetaEnd = 0.02 }, 1000);   // configs/tiny-sr
        Assert.That(fine.ClassOf(1e-5), Is.Not.EqualTo(fine.ClassOf(1e-3)), "a finer schedule tells the paper's two levels apart");
        Assert.That(() => sd.ClassOf(1), Throws.ArgumentException.With.Message.Contains("[0, 1)"));
    }

    /// <summary>The same images, noise and timesteps every step: AdamW must drive the instance loss down clearly.</summary>
    [Test]
    public void TheInstanceLossFallsOnAFixedBatch()
    {
        using var backend = Backends.Create("cpu");
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json")));
        using var store = ModelData.Initialized(backend, unet, seed: 4);
        using var adamw = new AdamW(store, 2e-3f);
        using var fixedScope = new TensorScope();
        var x0 = Tensor.FromArray(backend, TestData.ToFloat(TestData.Uniform(3, 2 * 4 * 16 * 16)), 2, 4, 16, 16);
        var context = Tensor.RandomNormal(backend, 9, 0, 2, 77, 32);
        var schedule = Schedule();
        float Step()
        {
            using var scope = new TensorScope();
            var l = DenoisingObjective.Compute(schedule, (x, t) => unet.Forward(x, t, context), x0, 1, new LossSettings(), new StepNoise(2, 0));
            l.Loss.Backward();
            adamw.ClipGradNorm();
            adamw.Step();
            store.ZeroGrad();
            return l.Instance.Item();
        }
        float first = Step();
        float last = first;
        for (int i = 0; i < 40; i++) last = Step();
        TestContext.Out.WriteLine($"instance loss {first} → {last} after 40 steps");
        Assert.That(last, Is.LessThan(0.5f * first));
    }
}
