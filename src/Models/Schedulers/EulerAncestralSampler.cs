// Euler ancestral sampling (k-diffusion's sample_euler_ancestral) in σ space, as diffusers' EulerAncestralDiscreteScheduler.
namespace DreamBooth.Models.Schedulers;

/// <summary>
/// The sample lives at scale x = x_t/√ᾱ = x0 + σ·ε with σ = √((1−ᾱ)/ᾱ); σ at a timestep between trained ones is
/// linearly interpolated, and a final σ = 0 ends the list. The UNet sees x/√(σ²+1) = x_t. From σ to σ':
///   σ_up = √(σ'²·(σ² − σ'²)/σ²),  σ_down = √(σ'² − σ_up²)        so σ_down² + σ_up² = σ'²
///   x̂0 = x − σ·ε̂ (epsilon), or x/(σ²+1) − σ/√(σ²+1)·v (v_prediction)
///   x' = x + (x − x̂0)/σ · (σ_down − σ) + σ_up·z
/// </summary>
public sealed class EulerAncestralSampler : Sampler
{
    double[] _sigmas = [];   // (n + 1) σ at each inference timestep, then 0

    public EulerAncestralSampler(NoiseSchedule schedule, TimestepSpacing spacing = TimestepSpacing.Linspace, int stepsOffset = 0)
        : base(schedule, spacing, stepsOffset)
    {
        if (schedule.PredictionType == PredictionType.Sample)
            throw new ArgumentException("Euler ancestral sampling supports prediction_type epsilon and v_prediction, " +
                                        "not sample (as in diffusers)");
    }

    /// <summary>σ at each inference step, then the final 0; empty until SetTimesteps.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    /// <summary>diffusers: σ_max for linspace and trailing spacing, √(σ_max² + 1) for leading.</summary>
    public override double InitNoiseSigma
    {
        get
        {
            CheckStep(0);
            double sigmaMax = _sigmas.Max();
            return Spacing == TimestepSpacing.Leading ? Math.Sqrt(sigmaMax * sigmaMax + 1) : sigmaMax;
        }
    }

    protected override bool RoundsTimesteps => false;

    protected override void OnTimestepsSet()
    {
        var sigmas = new double[NumInferenceSteps + 1];   // the last stays 0
        for (int i = 0; i < NumInferenceSteps; i++)
        {
            double t = Timesteps[i];
            int lo = (int)Math.Floor(t), hi = Math.Min(lo + 1, Schedule.NumTrainTimesteps - 1);
            sigmas[i] = Lerp(Sigma(lo), Sigma(hi), t - lo);
        }
        _sigmas = sigmas;
    }

    public override double ScaleModelInput(int i)
    {
        CheckStep(i);
        return 1 / Math.Sqrt(_sigmas[i] * _sigmas[i] + 1);
    }

    public override UpdateCoefficients Step(int i)
    {
        CheckStep(i);
        double sigma = _sigmas[i], next = _sigmas[i + 1];
        double up = Math.Sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma));
        double down = Math.Sqrt(Math.Max(next * next - up * up, 0));   // = σ'²/σ ≥ 0; max: rounding
        double dt = down - sigma;
        if (Schedule.PredictionType == PredictionType.Epsilon)
            return new UpdateCoefficients(1, dt, up);   // (x − x̂0)/σ = ε̂
        // x̂0 = a·x + b·v, so (x − x̂0)/σ = ((1 − a)·x − b·v)/σ.
        double a = 1 / (sigma * sigma + 1), b = -sigma / Math.Sqrt(sigma * sigma + 1);
        return new UpdateCoefficients(1 + dt * (1 - a) / sigma, -dt * b / sigma, up);
    }

    /// <summary>σ_t = √((1 − ᾱ_t)/ᾱ_t) at a trained timestep.</summary>
    double Sigma(int t)
    {
        double abar = Schedule.AlphaCumprod(t);
        return Math.Sqrt((1 - abar) / abar);
    }

    static double Lerp(double a, double b, double f) => a + (b - a) * f;
}
