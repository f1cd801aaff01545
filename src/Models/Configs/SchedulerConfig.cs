// The noise schedule fields of a diffusers scheduler config (scheduler/scheduler_config.json).
namespace DreamBooth.Models.Configs;

/// <summary>
/// The fields that define the training noise schedule and the timestep grid, shared by DDPM, DDIM, PNDM, Euler and
/// DPM-Solver configs, with diffusers' defaults. timestep_spacing and set_alpha_to_one stay null when the file does not
/// set them: their defaults depend on the scheduler class, and the sampler that is built (possibly another class, chosen
/// with --scheduler) fills in its own, as diffusers' from_config does.
/// </summary>
public sealed record SchedulerConfig
{
    public string ClassName { get; init; } = "DDPMScheduler";
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>What the model predicts: "epsilon" (the noise), "v_prediction" or "sample".</summary>
    public string PredictionType { get; init; } = "epsilon";
    public int StepsOffset { get; init; }
    public bool ClipSample { get; init; } = true;
    public bool? SetAlphaToOne { get; init; }
    /// <summary>"leading", "trailing" or "linspace"; null when absent.</summary>
    public string? TimestepSpacing { get; init; }
    /// <summary>Explicit betas, one per training timestep, used instead of BetaStart/BetaEnd/BetaSchedule; or null.</summary>
    public double[]? TrainedBetas { get; init; }
    /// <summary>Dynamic thresholding of x̂0 (pixel-space models); the samplers here reject it.</summary>
    public bool Thresholding { get; init; }
    /// <summary>DDPM's posterior variance choice; only "fixed_small" is implemented.</summary>
    public string VarianceType { get; init; } = "fixed_small";
    public bool RescaleBetasZeroSnr { get; init; }

    public static SchedulerConfig Load(string path)
    {
        var r = ConfigReader.Open(path);
        var d = new SchedulerConfig();
        string className = r.String("_class_name", d.ClassName);
        var config = new SchedulerConfig
        {
            ClassName = className,
            NumTrainTimesteps = r.PositiveInt("num_train_timesteps", d.NumTrainTimesteps),
            BetaStart = r.Double("beta_start", d.BetaStart),
            BetaEnd = r.Double("beta_end", d.BetaEnd),
            BetaSchedule = r.OneOf("beta_schedule", r.String("beta_schedule", d.BetaSchedule), "linear", "scaled_linear", "squaredcos_cap_v2"),
            PredictionType = r.OneOf("prediction_type", r.String("prediction_type", d.PredictionType), "epsilon", "v_prediction", "sample"),
            StepsOffset = r.Int("steps_offset", d.StepsOffset),
            ClipSample = r.Bool("clip_sample", d.ClipSample),
            SetAlphaToOne = r.Has("set_alpha_to_one") ? r.Bool("set_alpha_to_one", true) : null,
            TimestepSpacing = r.Has("timestep_spacing")
                ? r.OneOf("timestep_spacing", r.String("timestep_spacing", ""), "leading", "trailing", "linspace") : null,
            TrainedBetas = r.NullableDoubles("trained_betas"),
            Thresholding = r.Bool("thresholding", d.Thresholding),
            VarianceType = r.String("variance_type", d.VarianceType),
            RescaleBetasZeroSnr = r.Bool("rescale_betas_zero_snr", d.RescaleBetasZeroSnr),
        };
        if (config.TrainedBetas is { } betas && betas.Length != config.NumTrainTimesteps)
            throw r.Error("trained_betas", $"lists {betas.Length} betas for {config.NumTrainTimesteps} timesteps");
        if (config.TrainedBetas is null && config.BetaSchedule is "linear" or "scaled_linear" &&
            !(config.BetaStart > 0 && config.BetaStart <= config.BetaEnd && config.BetaEnd < 1))
            throw r.Error("beta_start", $"({config.BetaStart}) and \"beta_end\" ({config.BetaEnd}) must satisfy 0 < beta_start ≤ beta_end < 1");
        return config;
    }

    public string ToJson() => ConfigWriter.ToJson(w =>
    {
        w.WriteString("_class_name", ClassName);
        w.WriteNumber("beta_end", BetaEnd);
        w.WriteString("beta_schedule", BetaSchedule);
        w.WriteNumber("beta_start", BetaStart);
        w.WriteBoolean("clip_sample", ClipSample);
        w.WriteNumber("num_train_timesteps", NumTrainTimesteps);
        w.WriteString("prediction_type", PredictionType);
        if (SetAlphaToOne is { } alphaToOne) w.WriteBoolean("set_alpha_to_one", alphaToOne);
        w.WriteNumber("steps_offset", StepsOffset);
        if (TimestepSpacing != null) w.WriteString("timestep_spacing", TimestepSpacing);
        w.WriteBoolean("thresholding", Thresholding);
        w.WriteString("variance_type", VarianceType);
        w.WriteBoolean("rescale_betas_zero_snr", RescaleBetasZeroSnr);
        if (TrainedBetas is null) w.WriteNull("trained_betas");
        else
        {
            w.WriteStartArray("trained_betas");
            foreach (double b in TrainedBetas) w.WriteNumberValue(b);
            w.WriteEndArray();
        }
    });

    public void Save(string path) => ConfigWriter.Save(path, ToJson());
}
