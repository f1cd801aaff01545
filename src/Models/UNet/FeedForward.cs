// diffusers' FeedForward with the GEGLU activation: net.0.proj (dim → 2·4·dim), GEGLU, net.2 (4·dim → dim).
using DreamBooth.Autograd;
using DreamBooth.Models.Layers;

namespace DreamBooth.Models.UNet;

/// <summary>y = net.2(a · gelu(g)) where [a, g] = net.0.proj(x) split in halves. net.1 is a dropout, so the keys skip it.</summary>
public sealed class FeedForward : Module
{
    /// <summary>The nn.Sequential "net": children "0" (GEGLU holding "proj") and "2" (the output Linear).</summary>
    public sealed class Sequential : Module
    {
        public Geglu Geglu { get; }
        public Linear Out { get; }

        public Sequential(int dim, int inner)
        {
            Geglu = AddModule("0", new Geglu(dim, inner));
            Out = AddModule("2", new Linear(inner, dim));
        }
    }

    /// <summary>diffusers' GEGLU module: the "proj" Linear (dim → 2·inner) followed by F.Geglu.</summary>
    public sealed class Geglu : Module
    {
        public Linear Proj { get; }

        public Geglu(int dim, int inner) => Proj = AddModule("proj", new Linear(dim, 2 * inner));

        public Tensor Forward(Tensor x) => F.Geglu(Proj.Forward(x));   // (..., dim) → (..., inner)
    }

    public Sequential Net { get; }

    public FeedForward(int dim, int mult = 4) => Net = AddModule("net", new Sequential(dim, mult * dim));

    public Tensor Forward(Tensor x) => Net.Out.Forward(Net.Geglu.Forward(x));   // (..., dim) → (..., dim)
}
