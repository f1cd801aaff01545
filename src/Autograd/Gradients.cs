// How an op's backward hands a gradient to its input: the first contribution is kept, later ones are added.
namespace DreamBooth.Autograd;

public static class Gradients
{
    /// <summary>x.Grad += g, where g is a fresh contiguous tensor of x's shape that this call takes over: it becomes
    /// x.Grad when x has none yet, else it is added in and freed. Does nothing (and frees g) when x needs no gradient.</summary>
    public static void Accumulate(Tensor x, Tensor g)
    {
        if (!g.Shape.SequenceEqual(x.Shape))
            throw new InvalidOperationException($"backward: gradient {g} does not match its tensor {x}");
        if (!x.RequiresGrad) { g.Dispose(); return; }
        if (x.Grad is null) { x.Grad = g; return; }
        x.Backend.Axpy(x.Grad.Storage, g.Storage, 1f, g.Length);
        g.Dispose();
    }

    /// <summary>x's gradient buffer, created zero-filled if x has none: for kernels that accumulate (+=) into it
    /// (weight, bias, gamma/beta and embedding gradients).</summary>
    public static Tensor Into(Tensor x) => x.Grad ??= Tensor.Zeros(x.Backend, x.Shape.ToArray());
}
