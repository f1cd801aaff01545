// Noise augmentation of a super-resolution stage's low-res input, and how a level maps onto the UNet's noise-level classes.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Schedulers;

namespace DreamBooth.Models.Pipeline;

/// <summary>
/// Imagen's conditioning augmentation: the super-resolution UNet sees its low-res input noised,
///   x_low' = √(1 − a)·x_low + √a·ε,   ε ~ N(0, 1),
/// where the level a is the noise variance (0 ≤ a &lt; 1), and it is told the level through a class label (SD's x4
/// upscaler passes its noise_level as class_labels the same way). The classes are the timesteps k of the stage's
/// low-res schedule (low_res_scheduler/, else its scheduler), class k standing for the variance 1 − ᾱ_k; a level maps
/// to the class whose variance is nearest on a log scale (level 0, no noise, to class 0). With the x4 upscaler's
/// linear schedule (β from 1e-4 to 0.02), class 0 is a variance of 1e-4, so 1e-5 and 1e-3 fall on the classes 0 and 5;
/// a stage that must tell such levels apart is trained with a schedule whose first classes are finer. The noise itself is applied at exactly the
/// requested level. DreamBooth fine-tunes the stage at a low level (1e-5 rather than 1e-3; Ruiz et al. 2023, §4.3):
/// the higher level blurs the subject's fine detail.
/// </summary>
public sealed class LowResAugmentation
{
    readonly double[] _variances;   // (classes) 1 − ᾱ_k

    public LowResAugmentation(SchedulerConfig schedule, int numClasses)
    {
        var abar = NoiseSchedule.FromConfig(schedule).AlphasCumprod;
        int classes = Math.Min(numClasses, abar.Count);
        _variances = Enumerable.Range(0, classes).Select(k => 1 - abar[k]).ToArray();
    }

    /// <summary>The augmentation of a pipeline's super-resolution UNet.</summary>
    public static LowResAugmentation For(StableDiffusionPipeline p)
    {
        var schedule = p.LowResSchedulerConfig ?? p.SchedulerConfig;
        if (!p.UnetConfig.EmbedsClassLabels)
            throw new ArgumentException("low-res augmentation: the UNet has no num_class_embeds or class_embed_type (not a super-resolution stage)");
        return new(schedule, p.UnetConfig.NumClassEmbeds ?? schedule.NumTrainTimesteps);   // "timestep": one class per timestep
    }

    public int NumClasses => _variances.Length;

    /// <summary>The noise variance class k stands for.</summary>
    public double Variance(int k) => _variances[k];

    /// <summary>The class whose variance is nearest to <paramref name="level"/> in log space.</summary>
    public int ClassOf(double level)
    {
        Check(level);
        if (level == 0) return 0;
        int best = 0;
        for (int k = 1; k < _variances.Length; k++)
            if (Math.Abs(Math.Log(_variances[k] / level)) < Math.Abs(Math.Log(_variances[best] / level))) best = k;
        return best;
    }

    /// <summary>√(1 − a)·x + √a·ε: the low-res images noised at level a.</summary>
    public static Tensor Apply(Tensor lowRes,   // (N, C, h, w) in [−1, 1]
        double level, Tensor noise)             // (N, C, h, w) → (N, C, h, w)
    {
        Check(level);
        return level == 0 ? lowRes : F.Add(F.Scale(lowRes, (float)Math.Sqrt(1 - level)), F.Scale(noise, (float)Math.Sqrt(level)));
    }

    static void Check(double level)
    {
        if (!(level >= 0 && level < 1)) throw new ArgumentException($"noise level {level} must be a variance in [0, 1)");
    }
}
