// Inference memory for the models' forwards: without the tape, each layer keeps only its output.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Layers;

/// <summary>Without the tape (sampling with a frozen UNet, encoding or decoding with a frozen VAE, under Tape.NoGrad),
/// each resnet, transformer, attention and resampler runs in its own scope that keeps only its output, and a whole
/// forward keeps only its result: a UNet step then holds the skip connections plus one layer's temporaries, a 512×512
/// image in the VAE a few activations at a time, not every activation. With the tape recording, backward needs the
/// activations, so nothing is freed early.</summary>
static class InferenceScope
{
    public static Tensor Run(Func<Tensor> layer)
    {
        if (Tape.IsRecording) return layer();
        using var scope = new TensorScope();
        return scope.Keep(layer());
    }
}
