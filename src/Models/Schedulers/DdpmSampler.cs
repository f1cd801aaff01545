// DDPM ancestral sampling (Ho et al. 2020, eq. 7) with the fixed_small posterior variance, as diffusers' DDPMScheduler.
namespace DreamBooth.Models.Schedulers;

/// <summary>
/// Between consecutive inference timesteps t → p (p = −1 after the last, where ᾱ_p = 1):
///   α = ᾱ_t/ᾱ_p, β = 1 − α                                   the effective one-step α, β over the jump
///   x̂0 = A·x_t + B·model_output                             the predicted clean sample (linear in both)
///   mean = √ᾱ_p·β/(1−ᾱ_t) · x̂0 + √α·(1−ᾱ_p)/(1−ᾱ_t) · x_t   the posterior q(x_p | x_t, x0) mean
///   var  = max((1−ᾱ_p)/(1−ᾱ_t) · β, 1e-20)                   fixed_small, floored like diffusers
///   x_p  = mean + √var·z, with noise only while t > 0
/// diffusers' clip_sample would clamp x̂0 to [−1, 1], which is not linear; the factory rejects it.
/// </summary>
public sealed class DdpmSampler(NoiseSchedule schedule, TimestepSpacing spacing = TimestepSpacing.Leading, int stepsOffset = 0)
    : Sampler(schedule, spacing, stepsOffset)
{
    const double MinVariance = 1e-20;   // diffusers clamps the variance so its log is finite

    public override UpdateCoefficients Step(int i)
    {
        CheckStep(i);
        int t = (int)Timesteps[i];
        int prev = PreviousTimestep(i);
        double abarT = Schedule.AlphaCumprod(t);
        double abarPrev = prev >= 0 ? Schedule.AlphaCumprod(prev) : 1;
        double alpha = abarT / abarPrev, beta = 1 - alpha;
        double x0Coefficient = Math.Sqrt(abarPrev) * beta / (1 - abarT);
        double sampleCoefficient = Math.Sqrt(alpha) * (1 - abarPrev) / (1 - abarT);
        var (a, b) = PredictedOriginal(Schedule.PredictionType, abarT);
        double noise = t > 0 ? Math.Sqrt(Math.Max((1 - abarPrev) / (1 - abarT) * beta, MinVariance)) : 0;
        return new UpdateCoefficients(x0Coefficient * a + sampleCoefficient, x0Coefficient * b, noise);
    }
}
