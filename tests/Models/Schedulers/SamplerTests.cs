// Samplers: diffusers' timestep lists, one-step identities per prediction type, and full loops with an oracle model.
using DreamBooth.Models.Schedulers;
using NUnit.Framework;

namespace DreamBooth.Tests.Models.Schedulers;

public class SamplerTests
{
    // One step is a handful of double operations on O(1) values; only rounding separates the two routes.
    const double Exact = 1e-12;
    // A 50-step loop divides by √ᾱ_981 ≈ 0.08 and by σ, so rounding grows to ~1e-13; DDPM's last step also adds
    // 1e-10·z (diffusers floors its variance at 1e-20 while t > 0), |z| < 5 here.
    const double LoopTol = 1e-9;

    static NoiseSchedule Sd15Schedule(string prediction = "epsilon") =>
        NoiseSchedule.FromConfig(NoiseScheduleTests.Sd15 with { PredictionType = prediction });

    [Test]
    public void LeadingSpacingGivesStableDiffusionTimesteps()
    {
        var ddim = new DdimSampler(Sd15Schedule(), TimestepSpacing.Leading, stepsOffset: 1);
        ddim.SetTimesteps(50);
        Assert.That(ddim.Timesteps, Is.EqualTo(Enumerable.Range(0, 50).Select(k => 981.0 - 20 * k)));   // 981, 961, …, 1
    }

    [Test]
    public void TrailingAndLinspaceSpacing()
    {
        var ddpm = new DdpmSampler(Sd15Schedule(), TimestepSpacing.Trailing);
        ddpm.SetTimesteps(50);
        Assert.That(ddpm.Timesteps, Is.EqualTo(Enumerable.Range(0, 50).Select(k => 999.0 - 20 * k)));   // 999, …, 19
        ddpm.SetTimesteps(3);   // round(1000, 666.67, 333.33) − 1
        Assert.That(ddpm.Timesteps, Is.EqualTo(new[] { 999.0, 666, 332 }));
        ddpm.SetTimesteps(61);  // numpy's arange would give a 62nd value ≈ 0, i.e. timestep −1
        Assert.That(ddpm.Timesteps, Has.Length.EqualTo(61));
        Assert.That(ddpm.Timesteps[^1], Is.EqualTo(15));   // round(1000 − 60·1000/61 = 16.39) − 1

        var ddim = new DdimSampler(Sd15Schedule(), TimestepSpacing.Linspace);
        ddim.SetTimesteps(3);   // linspace(0, 999, 3) = 0, 499.5, 999, rounded half to even
        Assert.That(ddim.Timesteps, Is.EqualTo(new[] { 999.0, 500, 0 }));
        var euler = new EulerAncestralSampler(Sd15Schedule(), TimestepSpacing.Linspace);
        euler.SetTimesteps(3);   // Euler keeps the fractional timestep
        Assert.That(euler.Timesteps, Is.EqualTo(new[] { 999.0, 499.5, 0 }));
    }

    [Test]
    public void TimestepsPastTheTrainedRangeAndUnsetTimestepsAreRejected()
    {
        var ddim = new DdimSampler(Sd15Schedule(), TimestepSpacing.Leading, stepsOffset: 1);
        Assert.That(() => ddim.Step(0), Throws.InvalidOperationException.With.Message.Contains("SetTimesteps"));
        Assert.That(() => ddim.SetTimesteps(1000), Throws.ArgumentException.With.Message.Contains("steps_offset 1"));
        Assert.That(() => ddim.SetTimesteps(1001), Throws.InstanceOf<ArgumentOutOfRangeException>());
        ddim.SetTimesteps(10);
        Assert.That(() => ddim.Step(10), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    // x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε and the model output a perfect model gives for it.
    static (double Xt, double Output) Noised(NoiseSchedule s, double abar, double x0, double eps) =>
        (Math.Sqrt(abar) * x0 + Math.Sqrt(1 - abar) * eps, s.PredictionType switch
        {
            PredictionType.Epsilon => eps,
            PredictionType.VPrediction => Math.Sqrt(abar) * eps - Math.Sqrt(1 - abar) * x0,
            _ => x0,
        });

    [TestCase("epsilon", true)]
    [TestCase("v_prediction", true)]
    [TestCase("sample", true)]
    [TestCase("epsilon", false)]
    [TestCase("v_prediction", false)]
    public void DdimEtaZeroMovesAPerfectPredictionToTheNextNoiseLevel(string prediction, bool setAlphaToOne)
    {
        var s = Sd15Schedule(prediction);
        var ddim = new DdimSampler(s, TimestepSpacing.Leading, stepsOffset: 1, setAlphaToOne: setAlphaToOne);
        ddim.SetTimesteps(50);
        const double x0 = 0.8, eps = -0.6;
        foreach (int i in new[] { 0, 10, 49 })
        {
            int t = (int)ddim.Timesteps[i], prev = t - 20;
            double abarPrev = prev >= 0 ? s.AlphasCumprod[prev] : setAlphaToOne ? 1 : s.AlphasCumprod[0];
            var (xt, output) = Noised(s, s.AlphasCumprod[t], x0, eps);
            var c = ddim.Step(i);
            Assert.That(c.Noise, Is.Zero);
            Assert.That(c.Sample * xt + c.ModelOutput * output,
                Is.EqualTo(Math.Sqrt(abarPrev) * x0 + Math.Sqrt(1 - abarPrev) * eps).Within(Exact), $"step {i}");
        }
    }

    [Test]
    public void DdimStepsToTheNextTimestepInTheList()
    {
        // Trailing, 3 steps: 999 → 666 → 332 → final. (diffusers' t − T div n would step 666 → 333.)
        var s = Sd15Schedule();
        var ddim = new DdimSampler(s, TimestepSpacing.Trailing, setAlphaToOne: true);
        ddim.SetTimesteps(3);
        var (xt, eps) = Noised(s, s.AlphasCumprod[666], 0.25, -0.5);
        var c = ddim.Step(1);
        Assert.That(c.Sample * xt + c.ModelOutput * eps,
            Is.EqualTo(Math.Sqrt(s.AlphasCumprod[332]) * 0.25 + Math.Sqrt(1 - s.AlphasCumprod[332]) * -0.5).Within(Exact));
    }

    [TestCase(10)]
    [TestCase(30)]
    public void DdimEtaOneIsTheDdpmStep(int i)
    {
        // DDIM's σ at eta = 1 is the DDPM posterior's, and its mean then equals the posterior mean (DDIM paper §4.1).
        var s = Sd15Schedule();
        var ddim = new DdimSampler(s, TimestepSpacing.Leading, stepsOffset: 1, eta: 1);
        var ddpm = new DdpmSampler(s, TimestepSpacing.Leading, stepsOffset: 1);
        ddim.SetTimesteps(50);
        ddpm.SetTimesteps(50);
        UpdateCoefficients a = ddim.Step(i), b = ddpm.Step(i);
        Assert.That(a.Sample, Is.EqualTo(b.Sample).Within(Exact));
        Assert.That(a.ModelOutput, Is.EqualTo(b.ModelOutput).Within(Exact));
        Assert.That(a.Noise, Is.EqualTo(b.Noise).Within(Exact));
        Assert.That(a.Noise, Is.GreaterThan(0));
    }

    [TestCase("epsilon", 0)]
    [TestCase("epsilon", 25)]
    [TestCase("v_prediction", 25)]
    [TestCase("sample", 48)]
    public void DdpmStepIsTheGaussianPosterior(string prediction, int i)
    {
        // q(x_p | x_t, x0) by conditioning Gaussians: prior x_p ~ N(√ᾱ_p·x0, 1−ᾱ_p), likelihood
        // x_t | x_p ~ N(√α·x_p, 1−α) with α = ᾱ_t/ᾱ_p: precision adds, the mean is precision-weighted.
        var s = Sd15Schedule(prediction);
        var ddpm = new DdpmSampler(s, TimestepSpacing.Leading, stepsOffset: 1);
        ddpm.SetTimesteps(50);
        const double x0 = -0.4, eps = 1.1;
        int t = (int)ddpm.Timesteps[i], p = (int)ddpm.Timesteps[i + 1];
        double abarT = s.AlphasCumprod[t], abarP = s.AlphasCumprod[p], alpha = abarT / abarP;
        var (xt, output) = Noised(s, abarT, x0, eps);
        double precision = 1 / (1 - abarP) + alpha / (1 - alpha);
        double mean = (Math.Sqrt(abarP) * x0 / (1 - abarP) + Math.Sqrt(alpha) * xt / (1 - alpha)) / precision;
        var c = ddpm.Step(i);
        Assert.That(c.Sample * xt + c.ModelOutput * output, Is.EqualTo(mean).Within(Exact));
        Assert.That(c.Noise * c.Noise, Is.EqualTo(1 / precision).Within(Exact));
    }

    [Test]
    public void DdpmLastStepReturnsThePredictedSample()
    {
        var s = Sd15Schedule();
        var ddpm = new DdpmSampler(s, TimestepSpacing.Leading, stepsOffset: 1);
        ddpm.SetTimesteps(50);
        var (xt, eps) = Noised(s, s.AlphasCumprod[1], 0.3, 0.9);
        var c = ddpm.Step(49);   // t = 1 → ᾱ_p = 1: the posterior collapses onto x̂0
        Assert.That(c.Sample * xt + c.ModelOutput * eps, Is.EqualTo(0.3).Within(Exact));
        Assert.That(c.Noise, Is.EqualTo(1e-10));   // diffusers floors the variance at 1e-20 while t > 0
    }

    [TestCase(TimestepSpacing.Linspace)]
    [TestCase(TimestepSpacing.Leading)]
    public void EulerAncestralSigmasSplitIntoUpAndDown(TimestepSpacing spacing)
    {
        var s = Sd15Schedule();
        var euler = new EulerAncestralSampler(s, spacing, stepsOffset: 1);
        euler.SetTimesteps(3);
        double Sigma(int t) => Math.Sqrt((1 - s.AlphasCumprod[t]) / s.AlphasCumprod[t]);
        if (spacing == TimestepSpacing.Linspace)
        {
            Assert.That(euler.Sigmas[1], Is.EqualTo((Sigma(499) + Sigma(500)) / 2).Within(Exact));   // t = 499.5
            Assert.That(euler.InitNoiseSigma, Is.EqualTo(Sigma(999)).Within(Exact));
        }
        else
            Assert.That(euler.InitNoiseSigma, Is.EqualTo(Math.Sqrt(Sigma(667) * Sigma(667) + 1)).Within(Exact));
        Assert.That(euler.Sigmas[3], Is.Zero);
        for (int i = 0; i < 3; i++)
        {
            double sigma = euler.Sigmas[i], next = euler.Sigmas[i + 1];
            var c = euler.Step(i);   // epsilon: x' = x + (σ_down − σ)·ε̂ + σ_up·z
            double down = c.ModelOutput + sigma, up = c.Noise;
            Assert.That(c.Sample, Is.EqualTo(1));
            Assert.That(down * down + up * up, Is.EqualTo(next * next).Within(Exact), $"step {i}");
            Assert.That(euler.ScaleModelInput(i), Is.EqualTo(1 / Math.Sqrt(sigma * sigma + 1)).Within(Exact));
        }
        Assert.That(euler.Step(2).Noise, Is.Zero);   // the last step lands on x̂0 with no noise
    }

    [Test]
    public void EulerVPredictionMatchesEpsilonForThePerfectModel()
    {
        NoiseSchedule sEps = Sd15Schedule(), sV = Sd15Schedule("v_prediction");
        var eps = new EulerAncestralSampler(sEps, TimestepSpacing.Leading, stepsOffset: 1);
        var v = new EulerAncestralSampler(sV, TimestepSpacing.Leading, stepsOffset: 1);
        eps.SetTimesteps(10);
        v.SetTimesteps(10);
        const double x0 = 0.5, noise = -0.8;
        for (int i = 0; i < 10; i++)
        {
            double abar = sV.AlphasCumprod[(int)v.Timesteps[i]];
            double x = x0 + eps.Sigmas[i] * noise;   // the σ-space sample, x_t/√ᾱ
            double velocity = Math.Sqrt(abar) * noise - Math.Sqrt(1 - abar) * x0;
            UpdateCoefficients ce = eps.Step(i), cv = v.Step(i);
            Assert.That(cv.Sample * x + cv.ModelOutput * velocity, Is.EqualTo(ce.Sample * x + ce.ModelOutput * noise).Within(Exact));
            Assert.That(cv.Noise, Is.EqualTo(ce.Noise));
        }
    }

    // A perfect denoiser that knows x0: the ε that explains the UNet's input x_t = √ᾱ·x0 + √(1−ᾱ)·ε.
    static double[] Oracle(double[] input, double[] x0, double abar) =>
        input.Select((u, k) => (u - Math.Sqrt(abar) * x0[k]) / Math.Sqrt(1 - abar)).ToArray();

    static double[] Sample(Sampler sampler, double[] x0, int seed)
    {
        var rng = new Random(seed);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        double[] x = x0.Select(_ => sampler.InitNoiseSigma * Gaussian()).ToArray();
        for (int i = 0; i < sampler.NumInferenceSteps; i++)
        {
            double scale = sampler.ScaleModelInput(i);
            double[] output = Oracle(x.Select(v => scale * v).ToArray(), x0, sampler.Schedule.AlphasCumprod[(int)sampler.Timesteps[i]]);
            var c = sampler.Step(i);
            x = x.Select((v, k) => c.Sample * v + c.ModelOutput * output[k] + (c.Noise != 0 ? c.Noise * Gaussian() : 0)).ToArray();
        }
        return x;
    }

    static readonly double[] ToyX0 = [0.9, -0.5, 0.1, -1.2, 0.0, 0.33, 2.0, -0.75];

    [Test]
    public void SamplingLoopsWithAPerfectModelEndAtX0()
    {
        var s = Sd15Schedule();
        Sampler[] samplers =
        [
            new DdimSampler(s, TimestepSpacing.Leading, stepsOffset: 1, setAlphaToOne: true),
            new DdimSampler(s, TimestepSpacing.Leading, stepsOffset: 1, setAlphaToOne: true, eta: 1),
            new DdpmSampler(s, TimestepSpacing.Leading, stepsOffset: 1),
            new EulerAncestralSampler(s, TimestepSpacing.Leading, stepsOffset: 1),
            new EulerAncestralSampler(s, TimestepSpacing.Trailing),
        ];
        foreach (var sampler in samplers)
        {
            sampler.SetTimesteps(50);
            double[] x = Sample(sampler, ToyX0, seed: 7);
            for (int k = 0; k < x.Length; k++)
                Assert.That(x[k], Is.EqualTo(ToyX0[k]).Within(LoopTol), $"{sampler.GetType().Name} element {k}");
        }
    }

    [Test]
    public void DdimWithoutAlphaToOneStopsAtTimestepZerosNoiseLevel()
    {
        // SD 1.5 (set_alpha_to_one false): the last step goes to ᾱ_0, not 1. At eta = 0 with a perfect model the
        // implied ε never changes, so the end is √ᾱ_0·x0 + √(1−ᾱ_0)·ε with ε from the initial noise x_981.
        var s = Sd15Schedule();
        var ddim = new DdimSampler(s, TimestepSpacing.Leading, stepsOffset: 1, setAlphaToOne: false);
        ddim.SetTimesteps(50);
        double[] x = Sample(ddim, ToyX0, seed: 3);
        var rng = new Random(3);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        double[] eps = Oracle(ToyX0.Select(_ => Gaussian()).ToArray(), ToyX0, s.AlphasCumprod[981]);
        for (int k = 0; k < x.Length; k++)
            Assert.That(x[k], Is.EqualTo(Math.Sqrt(s.AlphasCumprod[0]) * ToyX0[k] + Math.Sqrt(1 - s.AlphasCumprod[0]) * eps[k])
                .Within(LoopTol), $"element {k}");
    }

    [Test]
    public void GuidanceMixesUncondAndCond()
    {
        var (u, c) = ClassifierFreeGuidance.Coefficients(7.5);
        const double uncond = 0.2, cond = -0.1;
        Assert.That(u * uncond + c * cond, Is.EqualTo(uncond + 7.5 * (cond - uncond)).Within(Exact));
        Assert.That(ClassifierFreeGuidance.Coefficients(1), Is.EqualTo((0.0, 1.0)));   // g = 1: the conditional alone
    }
}
