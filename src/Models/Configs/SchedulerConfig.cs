// The noise schedule fields of a diffusers scheduler config (scheduler/scheduler_config.json).
namespace DreamBooth.Models.Configs;

/// <summary>
/// The fields that define the training noise schedule and the timestep grid, shared by DDPM, DDIM, PNDM, Euler and
/// DPM-Solver configs. Defaults are diffusers' for the named class: they agree except that PNDM defaults
/// set_alpha_to_one to false and Euler / DPM-Solver default timestep_spacing to "linspace".
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
    public bool SetAlphaToOne { get; init; } = true;
    public string TimestepSpacing { get; init; } = "leading";
    /// <summary>Explicit betas, one per training timestep, used instead of BetaStart/BetaEnd/BetaSchedule; or null.</summary>
    public double[]? TrainedBetas { get; init; }

    public static SchedulerConfig Load(string path)
    {
        var r = ConfigReader.Open(path);
        var d = new SchedulerConfig();
        string className = r.String("_class_name", d.ClassName);
        var config = new SchedulerConfig
        {
            ClassName = className,
            NumTrainTimesteps = r.Int("num_train_timesteps", d.NumTrainTimesteps),
            BetaStart = r.Double("beta_start", d.BetaStart),
            BetaEnd = r.Double("beta_end", d.BetaEnd),
            BetaSchedule = r.OneOf("beta_schedule", r.String("beta_schedule", d.BetaSchedule), "linear", "scaled_linear", "squaredcos_cap_v2"),
            PredictionType = r.OneOf("prediction_type", r.String("prediction_type", d.PredictionType), "epsilon", "v_prediction", "sample"),
            StepsOffset = r.Int("steps_offset", d.StepsOffset),
            ClipSample = r.Bool("clip_sample", d.ClipSample),
            SetAlphaToOne = r.Bool("set_alpha_to_one", className != "PNDMScheduler"),
            TimestepSpacing = r.OneOf("timestep_spacing",
                r.String("timestep_spacing", className.StartsWith("Euler") || className.StartsWith("DPMSolver") ? "linspace" : "leading"),
                "leading", "trailing", "linspace"),
            TrainedBetas = r.NullableDoubles("trained_betas"),
        };
        if (config.NumTrainTimesteps <= 0) throw r.Error("num_train_timesteps", $"is {config.NumTrainTimesteps}, not positive");
        if (config.TrainedBetas is { } betas && betas.Length != config.NumTrainTimesteps)
            throw r.Error("trained_betas", $"lists {betas.Length} betas for {config.NumTrainTimesteps} timesteps");
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
        w.WriteBoolean("set_alpha_to_one", SetAlphaToOne);
        w.WriteNumber("steps_offset", StepsOffset);
        w.WriteString("timestep_spacing", TimestepSpacing);
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
