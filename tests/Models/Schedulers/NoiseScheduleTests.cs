// Noise schedules against their definitions and published Stable Diffusion values; training coefficients.
using DreamBooth.Models.Configs;
using DreamBooth.Models.Schedulers;
using NUnit.Framework;

namespace DreamBooth.Tests.Models.Schedulers;

public class NoiseScheduleTests
{
    // Double arithmetic over at most 1000 factors, computed along a different route: rounding only.
    const double Exact = 1e-12;
    // k-diffusion / A1111 publish SD 1.x's σ range as 14.6146 … 0.0292 (four decimals, from f32 ᾱ).
    const double PublishedSigmaTol = 1e-4;

    // SD 1.5's scheduler_config.json (shared/sd15/scheduler): scaled_linear 0.00085 … 0.012 over 1000 steps.
    internal static readonly SchedulerConfig Sd15 = new()
    {
        ClassName = "PNDMScheduler", BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012,
        NumTrainTimesteps = 1000, SetAlphaToOne = false, StepsOffset = 1, ClipSample = false,
    };

    [Test]
    public void ScaledLinearMatchesItsDefinitionAndPublishedSigmas()
    {
        var s = NoiseSchedule.FromConfig(Sd15);
        Assert.That(s.NumTrainTimesteps, Is.EqualTo(1000));
        Assert.That(s.Betas[0], Is.EqualTo(0.00085).Within(Exact));
        Assert.That(s.Betas[999], Is.EqualTo(0.012).Within(Exact));
        double root = Math.Sqrt(0.00085) + (Math.Sqrt(0.012) - Math.Sqrt(0.00085)) * 400 / 999;
        Assert.That(s.Betas[400], Is.EqualTo(root * root).Within(Exact));

        // ᾱ_999 as exp(Σ log(1 − β)), not as a running product.
        double logSum = 0;
        for (int t = 0; t < 1000; t++)
        {
            double r = Math.Sqrt(0.00085) + (Math.Sqrt(0.012) - Math.Sqrt(0.00085)) * t / 999;
            logSum += Math.Log(1 - r * r);
        }
        Assert.That(s.AlphasCumprod[999], Is.EqualTo(Math.Exp(logSum)).Within(Exact));
        Assert.That(s.AlphasCumprod[999], Is.EqualTo(0.0047).Within(1e-4));   // the commonly quoted ≈ 0.0047

        double SigmaAt(int t) => Math.Sqrt((1 - s.AlphasCumprod[t]) / s.AlphasCumprod[t]);
        Assert.That(SigmaAt(999), Is.EqualTo(14.6146).Within(PublishedSigmaTol));
        Assert.That(SigmaAt(0), Is.EqualTo(0.0292).Within(PublishedSigmaTol));
    }

    [Test]
    public void LinearBetasAreEvenlySpaced()
    {
        var s = NoiseSchedule.FromConfig(new SchedulerConfig());   // diffusers' default: linear 1e-4 … 0.02
        Assert.That(s.Betas[0], Is.EqualTo(1e-4).Within(Exact));
        Assert.That(s.Betas[999], Is.EqualTo(0.02).Within(Exact));
        for (int t = 1; t < 1000; t++)
            Assert.That(s.Betas[t] - s.Betas[t - 1], Is.EqualTo((0.02 - 1e-4) / 999).Within(Exact));
        Assert.That(s.Alphas[500], Is.EqualTo(1 - s.Betas[500]));
    }

    [Test]
    public void CosineScheduleTelescopesToItsAlphaBarAndCapsBeta()
    {
        var s = NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "squaredcos_cap_v2" });
        static double F(double u) => Math.Pow(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2), 2);
        // Π (1 − β_i) = Π f((i+1)/T)/f(i/T) = f((t+1)/T)/f(0) while no β is capped (the cap hits only at the end).
        foreach (int t in new[] { 0, 250, 500, 900 })
            Assert.That(s.AlphasCumprod[t], Is.EqualTo(F((t + 1) / 1000.0) / F(0)).Within(Exact), $"t = {t}");
        Assert.That(s.Betas[999], Is.EqualTo(0.999));   // 1 − f(1)/f(0.999) ≈ 1, capped
        Assert.That(s.Betas.Max(), Is.EqualTo(0.999));
    }

    [Test]
    public void TrainedBetasReplaceTheSchedule()
    {
        var s = NoiseSchedule.FromConfig(new SchedulerConfig { TrainedBetas = [0.1, 0.2, 0.5], BetaSchedule = "bogus" });
        Assert.That(s.NumTrainTimesteps, Is.EqualTo(3));
        Assert.That(s.AlphasCumprod[2], Is.EqualTo(0.9 * 0.8 * 0.5).Within(Exact));
    }

    [Test]
    public void BadScheduleFieldsAreNamed()
    {
        Assert.That(() => NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "sigmoid" }),
            Throws.ArgumentException.With.Message.Contains("beta_schedule \"sigmoid\""));
        Assert.That(() => NoiseSchedule.FromConfig(new SchedulerConfig { PredictionType = "flow" }),
            Throws.ArgumentException.With.Message.Contains("prediction_type"));
        Assert.That(() => NoiseSchedule.FromConfig(new SchedulerConfig { TrainedBetas = [0.1, 1.0] }),
            Throws.ArgumentException.With.Message.Contains("beta[1]"));
        Assert.That(() => NoiseSchedule.FromConfig(Sd15).AddNoiseCoefficients(1000),
            Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [TestCase(0)]
    [TestCase(500)]
    [TestCase(999)]
    public void NoiseVelocityAndTargetsAreConsistent(int t)
    {
        var s = NoiseSchedule.FromConfig(Sd15 with { PredictionType = "v_prediction" });
        double x0 = 0.7, eps = -1.3;
        var noise = s.AddNoiseCoefficients(t);
        var velocity = s.VelocityCoefficients(t);
        double xt = noise.X0 * x0 + noise.Noise * eps;
        double v = velocity.X0 * x0 + velocity.Noise * eps;
        Assert.That(noise.X0 * noise.X0 + noise.Noise * noise.Noise, Is.EqualTo(1).Within(Exact));   // variance kept
        // v-prediction inverts as x0 = √ᾱ·x_t − √(1−ᾱ)·v and ε = √(1−ᾱ)·x_t + √ᾱ·v.
        Assert.That(noise.X0 * xt - noise.Noise * v, Is.EqualTo(x0).Within(Exact));
        Assert.That(noise.Noise * xt + noise.X0 * v, Is.EqualTo(eps).Within(Exact));
        Assert.That(s.TargetCoefficients(t), Is.EqualTo(velocity));
        Assert.That(NoiseSchedule.FromConfig(Sd15).TargetCoefficients(t), Is.EqualTo(new MixCoefficients(0, 1)));
        Assert.That(NoiseSchedule.FromConfig(Sd15 with { PredictionType = "sample" }).TargetCoefficients(t),
            Is.EqualTo(new MixCoefficients(1, 0)));
    }

    [Test]
    public void SnrIsSignalOverNoisePowerAndFalls()
    {
        var s = NoiseSchedule.FromConfig(Sd15);
        Assert.That(s.Snr(999), Is.EqualTo(1 / (14.6146 * 14.6146)).Within(1e-7));   // 1/σ_max², σ_max as published
        for (int t = 1; t < 1000; t++) Assert.That(s.Snr(t), Is.LessThan(s.Snr(t - 1)));
    }
}
