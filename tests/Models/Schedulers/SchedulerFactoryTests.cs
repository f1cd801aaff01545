// SchedulerFactory: which sampler a config (or --scheduler) gives, its class defaults, and the settings it refuses.
using DreamBooth.Models.Configs;
using DreamBooth.Models.Schedulers;
using NUnit.Framework;

namespace DreamBooth.Tests.Models.Schedulers;

public class SchedulerFactoryTests
{
    static readonly SchedulerConfig Sd15 = NoiseScheduleTests.Sd15;

    [Test]
    public void Sd15PndmConfigSamplesWithDdimLikeDiffusers()
    {
        var ddim = (DdimSampler)SchedulerFactory.FromConfig(Sd15);
        Assert.That(ddim.SetAlphaToOne, Is.False);
        Assert.That(ddim.Spacing, Is.EqualTo(TimestepSpacing.Leading));
        Assert.That(ddim.StepsOffset, Is.EqualTo(1));
        Assert.That(ddim.Eta, Is.Zero);
        Assert.That(ddim.Schedule.Betas[999], Is.EqualTo(0.012).Within(1e-12));   // the config's schedule
        Assert.That(((DdimSampler)SchedulerFactory.FromConfig(Sd15 with { SetAlphaToOne = null })).SetAlphaToOne,
            Is.True);   // DDIMScheduler's own default when the key is absent
    }

    [Test]
    public void OverrideChoosesTheSamplerAndItsDefaultSpacing()
    {
        Assert.That(SchedulerFactory.FromConfig(Sd15, "ddpm"), Is.TypeOf<DdpmSampler>());
        var euler = SchedulerFactory.FromConfig(Sd15, "euler_a");
        Assert.That(euler, Is.TypeOf<EulerAncestralSampler>());
        Assert.That(euler.Spacing, Is.EqualTo(TimestepSpacing.Linspace));   // EulerAncestralDiscreteScheduler's default
        Assert.That(SchedulerFactory.FromConfig(Sd15 with { TimestepSpacing = "trailing" }, "euler_a").Spacing,
            Is.EqualTo(TimestepSpacing.Trailing));
        Assert.That(((DdimSampler)SchedulerFactory.FromConfig(Sd15, "ddim", eta: 0.5)).Eta, Is.EqualTo(0.5));
        Assert.That(SchedulerFactory.FromConfig(Sd15 with { ClassName = "EulerAncestralDiscreteScheduler" }),
            Is.TypeOf<EulerAncestralSampler>());
        Assert.That(SchedulerFactory.FromConfig(Sd15 with { ClassName = "DDPMScheduler" }), Is.TypeOf<DdpmSampler>());
    }

    [Test]
    public void UnknownClassNeedsAnOverride()
    {
        var lms = Sd15 with { ClassName = "LMSDiscreteScheduler" };
        Assert.That(() => SchedulerFactory.FromConfig(lms),
            Throws.ArgumentException.With.Message.Contains("LMSDiscreteScheduler").And.Message.Contains("--scheduler"));
        Assert.That(SchedulerFactory.FromConfig(lms, "ddim"), Is.TypeOf<DdimSampler>());
        Assert.That(() => SchedulerFactory.FromConfig(Sd15, "pndm"), Throws.ArgumentException.With.Message.Contains("pndm"));
    }

    [Test]
    public void NonLinearSettingsAreRefused()
    {
        var clipped = Sd15 with { ClassName = "DDPMScheduler", ClipSample = true };
        Assert.That(() => SchedulerFactory.FromConfig(clipped), Throws.ArgumentException.With.Message.Contains("clip_sample"));
        Assert.That(() => SchedulerFactory.FromConfig(clipped, "ddim"), Throws.ArgumentException.With.Message.Contains("clip_sample"));
        Assert.That(SchedulerFactory.FromConfig(clipped, "euler_a"), Is.TypeOf<EulerAncestralSampler>());   // no such option there
        Assert.That(() => SchedulerFactory.FromConfig(Sd15 with { Thresholding = true }),
            Throws.ArgumentException.With.Message.Contains("thresholding"));
        Assert.That(() => SchedulerFactory.FromConfig(Sd15 with { VarianceType = "learned_range" }, "ddpm"),
            Throws.ArgumentException.With.Message.Contains("variance_type"));
        Assert.That(() => SchedulerFactory.FromConfig(Sd15 with { RescaleBetasZeroSnr = true }),
            Throws.ArgumentException.With.Message.Contains("rescale_betas_zero_snr"));
        Assert.That(() => SchedulerFactory.FromConfig(Sd15 with { PredictionType = "sample" }, "euler_a"),
            Throws.ArgumentException.With.Message.Contains("sample"));
        Assert.That(() => SchedulerFactory.FromConfig(Sd15, "ddim", eta: 1.5), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
