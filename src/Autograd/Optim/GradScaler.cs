// Dynamic loss scaling for fp16 training (torch.cuda.amp.GradScaler): skip overflowing steps, back off, grow.
namespace DreamBooth.Autograd;

/// <summary>
/// f16 gradients underflow to zero below ~6e-8 and overflow above 65504. Multiplying the loss by a large scale S
/// before backward lifts small gradients into range; the optimizer then divides by S. When S is too large, some
/// gradient becomes Inf/NaN: that step is skipped and S halves. After <see cref="GrowthInterval"/> clean steps in a
/// row S doubles, so it stays near the largest safe value.
/// <code>
/// loss.Backward(scaler.Scale);                   // dLoss/dloss = S
/// scaler.Step(optimizer);                       // check, unscale and clip (to norm 1) inside the optimizer's one launch
/// store.ZeroGrad();
/// </code>
/// One SumSquares over the flat gradients serves both purposes: it is non-finite when some gradient is (or when the
/// squares overflow f32, which is an overflow too), and √(Σ g²) / S is the unscaled norm that clipping needs. The
/// unscale factor 1/S and the clip factor go to the optimizer as one gradient scale, so gradients are never rewritten.
/// </summary>
public sealed class GradScaler
{
    public GradScaler(float initScale = 65536f, float growthFactor = 2f, float backoffFactor = 0.5f, int growthInterval = 2000)
    {
        if (!(initScale > 0 && float.IsFinite(initScale)) || !(growthFactor > 1) || !(backoffFactor > 0 && backoffFactor < 1) || growthInterval < 1)
            throw new ArgumentException($"grad scaler: need a finite scale > 0, growth > 1, backoff in (0, 1) and interval ≥ 1; " +
                                        $"got {initScale}, {growthFactor}, {backoffFactor}, {growthInterval}");
        (Scale, GrowthFactor, BackoffFactor, GrowthInterval) = (initScale, growthFactor, backoffFactor, growthInterval);
    }

    /// <summary>The current loss scale S: seed backward with it.</summary>
    public float Scale { get; private set; }
    public float GrowthFactor { get; }
    public float BackoffFactor { get; }
    public int GrowthInterval { get; }

    /// <summary>Clean steps since the scale last changed (torch's _growth_tracker).</summary>
    public int CleanSteps { get; private set; }

    /// <summary>
    /// After a backward seeded with <see cref="Scale"/>: when every gradient is finite, one optimizer step on the
    /// gradients divided by the scale and clipped to <paramref name="maxGradNorm"/> (measured unscaled; 1 by default,
    /// as <see cref="Optimizer.ClipGradNorm"/> and diffusers' max_grad_norm; null for no clipping), then the scale grows
    /// if this completes a growth interval. Otherwise no step: weights and optimizer state stay as they were, the
    /// gradients are zeroed and the scale backs off. Clip here, not with optimizer.ClipGradNorm, which would measure
    /// the scaled gradients.
    /// </summary>
    public ScalerStep Step(Optimizer optimizer, float? maxGradNorm = 1f)
    {
        float sumSquares = GradNorm.SumSquares(optimizer.Stores);
        if (!float.IsFinite(sumSquares))
        {
            optimizer.ZeroGrad();
            Scale *= BackoffFactor;
            CleanSteps = 0;
            return new ScalerStep(Skipped: true, float.NaN);
        }
        float norm = (float)(Math.Sqrt(sumSquares) / Scale);
        float clip = maxGradNorm is { } max ? GradNorm.ClipFactor(norm, max) : 1f;
        optimizer.Step((float)(clip / (double)Scale));
        if (++CleanSteps == GrowthInterval)
        {
            float grown = Scale * GrowthFactor;
            if (float.IsFinite(grown)) Scale = grown;
            CleanSteps = 0;
        }
        return new ScalerStep(Skipped: false, norm);
    }

    /// <summary>Restores a checkpointed (Scale, CleanSteps).</summary>
    public void LoadState(float scale, int cleanSteps)
    {
        if (!(scale > 0 && float.IsFinite(scale)) || cleanSteps < 0 || cleanSteps >= GrowthInterval)
            throw new ArgumentException($"grad scaler: saved scale {scale} / clean steps {cleanSteps} are not a valid state");
        (Scale, CleanSteps) = (scale, cleanSteps);
    }
}

/// <summary>What <see cref="GradScaler.Step"/> did: whether it skipped the step (overflow), and the unscaled global
/// gradient norm before clipping (NaN when skipped).</summary>
public readonly record struct ScalerStep(bool Skipped, float GradNorm);
