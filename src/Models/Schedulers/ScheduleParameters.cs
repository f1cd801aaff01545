// The scheduler_config.json fields the schedules and samplers read, and the diffusers names of their choices.
namespace DreamBooth.Models.Schedulers;

/// <summary>
/// The fields of a diffusers scheduler_config.json that the schedules and samplers use, with diffusers' names.
/// A null field was absent from the file: the sampler that is built fills in its own diffusers class default.
/// Settings that cannot be expressed as a linear update (clip_sample, thresholding) or are not implemented
/// (rescale_betas_zero_snr, variance types other than fixed_small) are rejected by the factory, never ignored.
/// </summary>
public sealed record ScheduleParameters
{
    public string ClassName { get; init; } = "DDPMScheduler";            // _class_name
    public int NumTrainTimesteps { get; init; } = 1000;                  // num_train_timesteps
    public double BetaStart { get; init; } = 0.0001;                     // beta_start
    public double BetaEnd { get; init; } = 0.02;                         // beta_end
    public string BetaSchedule { get; init; } = "linear";                // beta_schedule
    public double[]? TrainedBetas { get; init; }                         // trained_betas: used instead of the schedule
    public string PredictionType { get; init; } = "epsilon";             // prediction_type
    public string? TimestepSpacing { get; init; }                        // timestep_spacing
    public int StepsOffset { get; init; }                                // steps_offset
    public bool? SetAlphaToOne { get; init; }                            // set_alpha_to_one (DDIM)
    // clip_sample: diffusers' DDPM/DDIM default it to true, but a config saved by PNDMScheduler has no such key and
    // latent models never clip (SD 1.5 says false). Clipping x0 is not linear, so an absent value counts as false.
    public bool ClipSample { get; init; }
    public bool Thresholding { get; init; }                              // thresholding
    public string VarianceType { get; init; } = "fixed_small";           // variance_type (DDPM)
    public bool RescaleBetasZeroSnr { get; init; }                       // rescale_betas_zero_snr
}

public enum BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2 }

/// <summary>What the UNet predicts: the noise ε, the velocity v = √ᾱ·ε − √(1−ᾱ)·x0, or the clean sample x0.</summary>
public enum PredictionType { Epsilon, VPrediction, Sample }

/// <summary>How inference timesteps are spread over the training ones (Table 2 of arXiv 2305.08891).</summary>
public enum TimestepSpacing { Leading, Trailing, Linspace }

/// <summary>diffusers' spellings of the choices above, parsed with an error that names the field.</summary>
public static class ScheduleNames
{
    public static BetaSchedule ParseBetaSchedule(string name) => name switch
    {
        "linear" => BetaSchedule.Linear,
        "scaled_linear" => BetaSchedule.ScaledLinear,
        "squaredcos_cap_v2" => BetaSchedule.SquaredCosCapV2,
        _ => throw Unknown("beta_schedule", name, "linear, scaled_linear, squaredcos_cap_v2"),
    };

    public static PredictionType ParsePredictionType(string name) => name switch
    {
        "epsilon" => PredictionType.Epsilon,
        "v_prediction" => PredictionType.VPrediction,
        "sample" => PredictionType.Sample,
        _ => throw Unknown("prediction_type", name, "epsilon, v_prediction, sample"),
    };

    public static TimestepSpacing ParseTimestepSpacing(string name) => name switch
    {
        "leading" => TimestepSpacing.Leading,
        "trailing" => TimestepSpacing.Trailing,
        "linspace" => TimestepSpacing.Linspace,
        _ => throw Unknown("timestep_spacing", name, "leading, trailing, linspace"),
    };

    static ArgumentException Unknown(string field, string name, string choices) =>
        new($"scheduler config: {field} \"{name}\" is not supported (choose one of: {choices})");
}
