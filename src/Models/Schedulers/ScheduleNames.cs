// The diffusers names of the schedule choices (beta schedule, prediction type, timestep spacing), parsed with clear errors.
namespace DreamBooth.Models.Schedulers;

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
