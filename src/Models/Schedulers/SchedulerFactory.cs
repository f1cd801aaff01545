// Builds the sampler a scheduler config names (or the one --scheduler asks for) over that config's noise schedule.
using DreamBooth.Models.Configs;

namespace DreamBooth.Models.Schedulers;

public static class SchedulerFactory
{
    /// <summary>The values --scheduler accepts.</summary>
    public static readonly string[] SamplerNames = ["ddim", "ddpm", "euler_a"];

    /// <summary>
    /// The sampler for a parsed scheduler_config.json. samplerOverride (--scheduler ddim|ddpm|euler_a) replaces the
    /// config's class; the schedule fields are shared by all diffusers schedulers, so any config works with any
    /// sampler. PNDMScheduler (what SD 1.5 ships) has the same schedule fields, but PNDM's multistep method is not
    /// implemented here: its configs sample with DDIM, which diffusers lists as compatible with it.
    /// eta only affects DDIM.
    /// </summary>
    public static Sampler FromConfig(SchedulerConfig p, string? samplerOverride = null, double eta = 0)
    {
        string sampler = samplerOverride ?? p.ClassName switch
        {
            "DDPMScheduler" => "ddpm",
            "DDIMScheduler" or "PNDMScheduler" => "ddim",
            "EulerAncestralDiscreteScheduler" => "euler_a",
            _ => throw new ArgumentException($"scheduler config: _class_name \"{p.ClassName}\" is not supported; " +
                                             $"choose a sampler with --scheduler {string.Join("|", SamplerNames)}"),
        };
        if (p.RescaleBetasZeroSnr)
            throw new ArgumentException("scheduler config: rescale_betas_zero_snr = true is not supported");
        var schedule = NoiseSchedule.FromConfig(p);
        TimestepSpacing Spacing(string classDefault) => ScheduleNames.ParseTimestepSpacing(p.TimestepSpacing ?? classDefault);
        switch (sampler)
        {
            case "ddpm":
                RejectClipping(p);
                if (p.VarianceType != "fixed_small")
                    throw new ArgumentException($"scheduler config: variance_type \"{p.VarianceType}\" is not supported " +
                                                "(only fixed_small)");
                return new DdpmSampler(schedule, Spacing("leading"), p.StepsOffset);
            case "ddim":
                RejectClipping(p);
                return new DdimSampler(schedule, Spacing("leading"), p.StepsOffset, p.SetAlphaToOne ?? true, eta);
            case "euler_a":   // diffusers' Euler schedulers have no clip_sample or thresholding to honour
                return new EulerAncestralSampler(schedule, Spacing("linspace"), p.StepsOffset);
            default:
                throw new ArgumentException($"--scheduler \"{sampler}\" is not one of {string.Join(", ", SamplerNames)}");
        }
    }

    /// <summary>DDPM and DDIM settings that clamp x̂0: a step would no longer be linear in x_t and model_output.</summary>
    static void RejectClipping(SchedulerConfig p)
    {
        if (p.ClipSample)
            throw new ArgumentException("scheduler config: clip_sample = true is not supported (clamping x0 is not a " +
                                        "linear update; latent models such as SD 1.5 set it to false)");
        if (p.Thresholding)
            throw new ArgumentException("scheduler config: thresholding = true is not supported (dynamic thresholding " +
                                        "is not a linear update; it is meant for pixel-space models)");
    }
}
