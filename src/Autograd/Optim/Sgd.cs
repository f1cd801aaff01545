// Stochastic gradient descent, optionally with heavy-ball momentum, over a parameter store's flat buffers.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// torch.optim.SGD without dampening, weight decay or Nesterov: with g = grads · gradScale,
///   momentum 0:  p ← p − lr·g
///   momentum μ:  b ← μ·b + g  (b starts at 0, so the first step sets b = g, as PyTorch does);  p ← p − lr·b
/// </summary>
public sealed class Sgd : Optimizer
{
    readonly DeviceBuffer? _momentumBuffer;

    public Sgd(ParameterStore store, float lr, float momentum = 0f) : base([store], lr)
    {
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "SGD: momentum must lie in [0, 1)");
        Momentum = momentum;
        if (momentum > 0) _momentumBuffer = store.Backend.Allocate(DType.F32, store.TrainableLength);
    }

    ParameterStore Store => Stores[0];

    public float Momentum { get; }

    public override IReadOnlyList<(string Name, DeviceBuffer Buffer)> StateBuffers =>
        _momentumBuffer is null ? [] : [("momentum_buffer", _momentumBuffer)];

    protected override void Update(float gradScale)
    {
        var be = Store.Backend;
        long n = Store.TrainableLength;
        if (_momentumBuffer is not { } b)
        {
            be.Axpy(Store.TrainableValues, Store.Grads, -Lr * gradScale, n);
            return;
        }
        be.Scale(b, b, Momentum, n);
        be.Axpy(b, Store.Grads, gradScale, n);
        be.Axpy(Store.TrainableValues, b, -Lr, n);
    }
}
