// The DreamBooth training objective as pure tensor math: noise → noisy sample → prediction → target → instance + λ·prior.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Schedulers;

namespace DreamBooth.Models.Pipeline;

/// <summary>λ (prior_loss_weight), γ of min-SNR weighting (snr_gamma; null turns it off), and offset noise.</summary>
public sealed record LossSettings(double PriorLossWeight = 1, double? SnrGamma = null, bool OffsetNoise = false);

/// <summary>
/// The random draws of one micro-step: Philox stream <see cref="Seed"/>, counters from Step·2^34 on, one 2^30-block
/// range (2^32 numbers) per draw. A step's numbers depend only on (Seed, Step), so a resumed run draws what an
/// uninterrupted one would, on every backend.
/// </summary>
public readonly record struct StepNoise(ulong Seed, ulong Step)
{
    public const int TimestepDraw = 0, NoiseDraw = 1, OffsetNoiseDraw = 2, LatentDraw = 3, AugmentationDraw = 4, LowResDraw = 5, LoraDropoutDraw = 6;

    /// <summary>LoRA dropout takes the rest of the step's 2^34 counters (draws 6 to 15, one range per adapter): it stays the
    /// last draw.</summary>
    public const ulong LoraDropoutCounters = (16UL - LoraDropoutDraw) << 30;

    /// <summary>The counter offset of draw <paramref name="draw"/> of this step.</summary>
    public ulong Offset(int draw) => (Step << 34) + ((ulong)draw << 30);

    /// <summary>N(0, 1) of the given shape from draw <paramref name="draw"/>.</summary>
    public Tensor Normal(IBackend backend, int draw, params int[] shape) => Tensor.RandomNormal(backend, Seed, Offset(draw), shape);

    /// <summary>The four 24-bit uniforms in [0, 1) of block <paramref name="block"/> of draw <paramref name="draw"/> (a row's
    /// crop corner and flip, a caption's form).</summary>
    public (double U0, double U1, double U2, double U3) Uniforms(int draw, long block)
    {
        var (w0, w1, w2, w3) = Philox.StreamBlock(Seed, Offset(draw), block);
        return (Philox.ToUniform(w0), Philox.ToUniform(w1), Philox.ToUniform(w2), Philox.ToUniform(w3));
    }

    /// <summary>n integers uniform in [0, bound): ⌊u·bound⌋ of the stream's 24-bit uniforms u (a bias below 2^-24·bound).</summary>
    public int[] Integers(int draw, int n, int bound)
    {
        var values = new int[n];
        for (int i = 0; i < n; i++)
        {
            var (u0, u1, u2, u3) = Uniforms(draw, i / 4);
            double u = (i % 4) switch { 0 => u0, 1 => u1, 2 => u2, _ => u3 };
            values[i] = Math.Min((int)(u * bound), bound - 1);
        }
        return values;
    }
}

/// <summary>The loss to differentiate and its two terms, each a one-element tensor; Prior is null without class
/// examples.</summary>
public sealed record DenoisingLoss(Tensor Loss, Tensor Instance, Tensor? Prior);

public static class DenoisingObjective
{
    /// <summary>
    /// DreamBooth's loss on one batch, as diffusers' train_dreambooth computes it:
    ///   t ~ U{0, …, T−1} per sample;  ε ~ N(0, 1) (+ 0.1·N(0, 1) per (sample, channel) with offset noise)
    ///   x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε;  prediction = model(x_t, t);  target = ε, or v = √ᾱ_t·ε − √(1−ᾱ_t)·x0
    ///   the batch splits into its first <paramref name="instances"/> rows (the subject) and the rest (class images):
    ///   loss = MSE(instance) + λ·MSE(class)
    /// With snr_gamma γ the instance term weighs each sample's MSE by min(SNR_t, γ)/SNR_t (ε) or min(SNR_t, γ)/(SNR_t+1)
    /// (v) before the mean (Hang et al. 2023, "min-SNR"); the prior term stays unweighted, as in diffusers (which
    /// weighs by the instance half's timesteps only in its fixed scripts; its DreamBooth script mixes the halves up).
    /// </summary>
    public static DenoisingLoss Compute(NoiseSchedule schedule,
        Func<Tensor, float[], Tensor> predict,   // (x_t (N, C, H, W), t (N)) → prediction (N, C, H, W)
        Tensor x0,                               // (N, C, H, W): instance rows first, then class rows
        int instances, LossSettings settings, StepNoise noise)
    {
        int n = x0.Dim(0);
        if (instances < 1 || instances > n) throw new ArgumentException($"denoising loss: {instances} instance rows in a batch of {n}");
        int[] t = noise.Integers(StepNoise.TimestepDraw, n, schedule.NumTrainTimesteps);
        var eps = DrawNoise(x0, noise, settings.OffsetNoise);
        var prediction = predict(schedule.AddNoise(x0, eps, t), Array.ConvertAll(t, v => (float)v));
        var target = schedule.Target(x0, eps, t);

        var instance = InstanceLoss(F.Narrow(prediction, 0, 0, instances), F.Narrow(target, 0, 0, instances), t[..instances],
            schedule, settings.SnrGamma);
        if (instances == n) return new DenoisingLoss(instance, instance, null);
        var prior = F.MseLoss(F.Narrow(prediction, 0, instances, n - instances), F.Narrow(target, 0, instances, n - instances));
        return new DenoisingLoss(F.Add(instance, F.Scale(prior, (float)settings.PriorLossWeight)), instance, prior);
    }

    /// <summary>ε, plus 0.1·N(0, 1) broadcast over each (sample, channel) plane with offset noise (Guttenberg 2023).</summary>
    static Tensor DrawNoise(Tensor x0, StepNoise noise, bool offsetNoise)   // (N, C, H, W) → (N, C, H, W)
    {
        var eps = noise.Normal(x0.Backend, StepNoise.NoiseDraw, x0.Shape.ToArray());
        if (!offsetNoise) return eps;
        var offset = noise.Normal(x0.Backend, StepNoise.OffsetNoiseDraw, x0.Dim(0), x0.Dim(1), 1, 1);
        return F.Add(eps, F.Scale(offset, 0.1f));
    }

    /// <summary>The mean squared error, or with γ the mean over samples of w_i · mean((pred_i − target_i)²).</summary>
    static Tensor InstanceLoss(Tensor prediction, Tensor target,   // (B, C, H, W) each
        int[] timesteps, NoiseSchedule schedule, double? snrGamma)  // (B) → (1)
    {
        if (snrGamma is not { } gamma) return F.MseLoss(prediction, target);
        var d = F.Sub(prediction, target);
        var perSample = F.Mean(F.Mul(d, d), 1, 2, 3);                                          // (B, 1, 1, 1)
        var weights = Array.ConvertAll(timesteps, t =>
        {
            double snr = schedule.Snr(t);
            return (float)(Math.Min(snr, gamma) / (schedule.PredictionType == PredictionType.VPrediction ? snr + 1 : snr));
        });
        var w = Tensor.FromArray(prediction.Backend, weights, timesteps.Length, 1, 1, 1);
        return F.Reshape(F.Mean(F.Mul(perSample, w)), 1);
    }
}
