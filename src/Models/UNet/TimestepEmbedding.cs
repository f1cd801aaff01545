// diffusers' TimestepEmbedding: the MLP linear_1 → SiLU → linear_2 on the sinusoidal timestep features.
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

public sealed class TimestepEmbedding : Module
{
    public Linear Linear1 { get; }
    public Linear Linear2 { get; }

    public TimestepEmbedding(int inChannels, int timeEmbedDim)
    {
        Linear1 = AddModule("linear_1", new Linear(inChannels, timeEmbedDim));
        Linear2 = AddModule("linear_2", new Linear(timeEmbedDim, timeEmbedDim));
    }

    public Tensor Forward(Tensor t) => Linear2.Forward(F.Silu(Linear1.Forward(t)));   // (N, In) → (N, T)
}
