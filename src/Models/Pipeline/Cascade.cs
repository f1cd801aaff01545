// The second stage of a cascade: a super-resolution pipeline upscales the first stage's images, as DeepFloyd IF's stage II.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Pipeline;

public static class Cascade
{
    /// <summary>
    /// The SR stage's samples for the first stage's images (values in [0, 1]): each low-res image goes to [−1, 1], is
    /// noised at <paramref name="noiseLevel"/> (a variance, see <see cref="LowResAugmentation"/>) with the request's seed,
    /// and conditions the stage, which is told the level's class. The output size is the SR UNet's (or the request's).
    /// </summary>
    public static GeneratedImages Upscale(StableDiffusionPipeline sr, GenerationRequest r, GeneratedImages low, double noiseLevel,
        Action<int, int>? onStep = null)
    {
        var augmentation = LowResAugmentation.For(sr);
        using var scope = new TensorScope();
        int[] shape = [low.Count, 3, low.Height, low.Width];
        var images = F.Sub(F.Scale(Tensor.FromArray(sr.Backend, low.Pixels, shape), 2f), Tensor.FromArray(sr.Backend, [1f], 1));
        var noised = LowResAugmentation.Apply(images, noiseLevel, Tensor.RandomNormal(sr.Backend, r.Seed ^ 0x6c6f77726573UL, 0, shape));
        return TextToImage.Generate(sr, r with { NumImages = low.Count }, onStep, lowRes: new LowResCondition(noised, augmentation.ClassOf(noiseLevel)));
    }
}
