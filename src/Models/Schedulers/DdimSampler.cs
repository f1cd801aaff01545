// DDIM sampling (Song et al. 2020, eqs. 12 and 16), deterministic at eta = 0, as diffusers' DDIMScheduler.
namespace DreamBooth.Models.Schedulers;

/// <summary>
/// From timestep t to p, the next timestep in the list (diffusers' DDIM uses p = t − T div n, which is the same
/// for leading spacing, SD's default, but misses the list for linspace and uneven trailing: diffusers issue 9261):
///   ᾱ_p = ᾱ[p], or for p &lt; 0 the final ᾱ: 1 with set_alpha_to_one, else ᾱ[0] (SD 1.5: false)
///   x̂0 = A·x_t + B·model_output,  ε̂ = C·x_t + D·model_output
///   σ  = eta · √((1−ᾱ_p)/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_p))
///   x_p = √ᾱ_p·x̂0 + √(1−ᾱ_p−σ²)·ε̂ + σ·z
/// </summary>
public sealed class DdimSampler : Sampler
{
    public double Eta { get; }
    public bool SetAlphaToOne { get; }

    public DdimSampler(NoiseSchedule schedule, TimestepSpacing spacing = TimestepSpacing.Leading, int stepsOffset = 0,
        bool setAlphaToOne = true, double eta = 0) : base(schedule, spacing, stepsOffset)
    {
        // For eta ≤ 1, σ² ≤ 1 − ᾱ_p, so the direction term's square root stays real.
        if (!(eta >= 0 && eta <= 1)) throw new ArgumentOutOfRangeException(nameof(eta), eta, "DDIM eta must be in [0, 1]");
        Eta = eta;
        SetAlphaToOne = setAlphaToOne;
    }

    public override UpdateCoefficients Step(int i)
    {
        CheckStep(i);
        int t = (int)Timesteps[i];
        int prev = PreviousTimestep(i);
        double abarT = Schedule.AlphaCumprod(t);
        double abarPrev = prev >= 0 ? Schedule.AlphaCumprod(prev) : SetAlphaToOne ? 1 : Schedule.AlphaCumprod(0);
        var (a, b) = PredictedOriginal(Schedule.PredictionType, abarT);
        var (c, d) = PredictedNoise(Schedule.PredictionType, abarT);
        double variance = (1 - abarPrev) / (1 - abarT) * (1 - abarT / abarPrev);
        double sigma = Eta * Math.Sqrt(variance);
        double direction = Math.Sqrt(Math.Max(1 - abarPrev - sigma * sigma, 0));   // max: rounding at σ² = 1 − ᾱ_p
        double x0Coefficient = Math.Sqrt(abarPrev);
        return new UpdateCoefficients(x0Coefficient * a + direction * c, x0Coefficient * b + direction * d, sigma);
    }

    /// <summary>ε̂ = C·x_t + D·model_output at a timestep with cumulative ᾱ.</summary>
    static (double C, double D) PredictedNoise(PredictionType prediction, double abar) => prediction switch
    {
        PredictionType.Epsilon => (0, 1),
        PredictionType.VPrediction => (Math.Sqrt(1 - abar), Math.Sqrt(abar)),
        _ => (1 / Math.Sqrt(1 - abar), -Math.Sqrt(abar) / Math.Sqrt(1 - abar)),
    };
}
