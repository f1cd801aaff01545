// Scalar coefficients of the linear updates the schedulers produce, and classifier-free guidance's mix.
namespace DreamBooth.Models.Schedulers;

/// <summary>value = X0·x0 + Noise·ε (a noised sample, or a training target).</summary>
public readonly record struct MixCoefficients(double X0, double Noise);

/// <summary>
/// One sampler step as x_prev = Sample·x_t + ModelOutput·model_output + Noise·z, z ~ N(0, 1) drawn only when
/// Noise ≠ 0. Every prediction type (ε, v, x0) folds into this form because each sampler is linear in both.
/// </summary>
public readonly record struct UpdateCoefficients(double Sample, double ModelOutput, double Noise);

/// <summary>Classifier-free guidance: guided = uncond + g·(cond − uncond) = (1 − g)·uncond + g·cond.</summary>
public static class ClassifierFreeGuidance
{
    public static (double Uncond, double Cond) Coefficients(double guidanceScale) => (1 - guidanceScale, guidanceScale);
}
