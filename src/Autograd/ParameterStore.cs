// ParameterStore: a model's parameters and gradients in two flat buffers, with a named view per parameter.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// All of a model's parameters live in one flat f32 buffer, the trainable ones first; their gradients live in a second
/// flat buffer of the trainable length. Each parameter is a view of its slice. So zero-grad is one fill, gradient-norm
/// clipping one reduction, and an optimizer step one launch over [0, TrainableLength).
/// </summary>
public sealed class ParameterStore : IDisposable
{
    readonly Dictionary<string, Parameter> _byName = [];
    readonly List<Tensor> _views = [];

    public ParameterStore(IBackend backend, Module model)
    {
        Backend = backend;
        Named = model.NamedParameters().ToList();
        foreach (var (name, p) in Named)
        {
            if (p.IsBound) throw new InvalidOperationException($"parameter store: {name} already belongs to another store");
            _byName.Add(name, p);
        }
        var trainable = Named.Where(n => n.Parameter.RequiresGrad).ToList();
        var frozen = Named.Where(n => !n.Parameter.RequiresGrad).ToList();
        TrainableLength = trainable.Sum(n => n.Parameter.Length);
        Length = TrainableLength + frozen.Sum(n => n.Parameter.Length);
        Values = backend.Allocate(DType.F32, Length);
        Grads = backend.Allocate(DType.F32, TrainableLength);

        long offset = 0;
        foreach (var (_, p) in trainable.Concat(frozen))
        {
            var value = Tensor.Borrow(Values.Slice(offset, p.Length), p.Shape);
            if (p.RequiresGrad)
            {
                value.RequiresGrad = true;
                value.Grad = Tensor.Borrow(Grads.Slice(offset, p.Length), p.Shape);
                _views.Add(value.Grad);
            }
            p.Bind(value);
            _views.Add(value);
            Offsets.Add(p, offset);
            offset += p.Length;
        }
    }

    public IBackend Backend { get; }

    /// <summary>The parameters in the model's declaration order (the order of its state dict).</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> Named { get; }

    /// <summary>All values: (TrainableLength trainable, then the frozen ones).</summary>
    public DeviceBuffer Values { get; }
    /// <summary>Gradients of the trainable parameters: (TrainableLength).</summary>
    public DeviceBuffer Grads { get; }
    public long Length { get; }
    public long TrainableLength { get; }

    /// <summary>Where each parameter starts in <see cref="Values"/> (and, when trainable, in <see cref="Grads"/>).</summary>
    public Dictionary<Parameter, long> Offsets { get; } = [];

    /// <summary>The trainable prefix of <see cref="Values"/>, the slice an optimizer updates.</summary>
    public DeviceBuffer TrainableValues => Values.Slice(0, TrainableLength);

    public Parameter this[string name] => _byName.TryGetValue(name, out var p)
        ? p : throw new KeyNotFoundException($"parameter store: no parameter named '{name}'");

    public bool TryGet(string name, out Parameter parameter) => _byName.TryGetValue(name, out parameter!);

    public void ZeroGrad() => Backend.Fill(Grads, 0f);

    /// <summary>Fills every parameter from its <see cref="Init"/>. Random draws come from the Philox stream keyed by
    /// <paramref name="seed"/>, each parameter at its own counter range, so a model's weights do not depend on the backend.</summary>
    public void Initialize(ulong seed)
    {
        using var minusOne = Backend.Allocate(DType.F32, 1);   // the shift of every uniform draw: (1)
        Backend.Fill(minusOne, -1f);
        foreach (var (_, p) in Named)
        {
            var v = p.Value.Storage;
            switch (p.Init)
            {
                case Init.Constant c:
                    Backend.Fill(v, (float)c.Value);
                    break;
                case Init.Normal n:
                    Backend.RandomNormal(v, seed, (ulong)Offsets[p]);
                    Backend.Scale(v, v, (float)n.Std, p.Length);
                    break;
                case Init.Uniform u:                        // u ~ U[0,1) -> (2u - 1)·bound
                    Backend.RandomUniform(v, seed, (ulong)Offsets[p]);
                    Backend.Scale(v, v, 2f, p.Length);
                    Backend.Binary(BinaryOp.Add, v, v, minusOne, [checked((int)p.Length)], [1]);
                    Backend.Scale(v, v, (float)u.Bound, p.Length);
                    break;
            }
        }
    }

    bool _disposed;

    /// <summary>Frees the flat buffers; a second call does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _views) t.Dispose();
        Values.Dispose();
        Grads.Dispose();
    }
}
