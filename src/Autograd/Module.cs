// Module and Parameter: a tree of named layers whose parameter paths equal the diffusers state-dict keys.
namespace DreamBooth.Autograd;

/// <summary>How a parameter is initialised (PyTorch's defaults, which diffusers keeps): U(-bound, bound), N(0, std²),
/// or a constant.</summary>
public abstract record Init
{
    public sealed record Uniform(double Bound) : Init;
    public sealed record Normal(double Std) : Init;
    public sealed record Constant(double Value) : Init;

    public static readonly Init Zeros = new Constant(0), Ones = new Constant(1);

    /// <summary>nn.Linear / nn.Conv2d weights and biases: kaiming_uniform(a=√5) gives the bound 1/√fan_in for both.</summary>
    public static Init FanIn(long fanIn) => new Uniform(1.0 / Math.Sqrt(fanIn));
}

/// <summary>A learnable array. Its storage is a slice of its <see cref="ParameterStore"/>'s flat buffer; its gradient
/// (when it requires one) is the matching slice of the flat gradient buffer.</summary>
public sealed class Parameter(int[] shape, Init init)
{
    Tensor? _value;
    bool _requiresGrad = true;

    public int[] Shape { get; } = shape;
    public Init Init { get; } = init;
    public long Length => Tensor.ShapeLength(Shape);

    /// <summary>Fixed when the store is created: freezing after that would move the flat buffers, so a change then
    /// is refused.</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (IsBound && value != _requiresGrad)
                throw new InvalidOperationException("parameter: requires_grad is fixed once a parameter store holds it; " +
                                                    "freeze or unfreeze before creating the store");
            _requiresGrad = value;
        }
    }

    public Tensor Value => _value ?? throw new InvalidOperationException(
        "parameter: not bound to storage yet; create a ParameterStore for the model first");

    public bool IsBound => _value != null;

    internal void Bind(Tensor value)
    {
        if (_value != null) throw new InvalidOperationException("parameter: already bound to a ParameterStore");
        _value = value;
    }
}

/// <summary>
/// A layer. Subclasses declare parameters and children in their constructor, under the names the checkpoint uses, and
/// compute in their own Forward method. NamedParameters walks the tree depth-first in declaration order, joining names
/// with '.', which gives keys such as "down_blocks.0.attentions.0.proj_in.weight".
/// </summary>
public abstract class Module
{
    readonly List<(string Name, Parameter Parameter)> _parameters = [];
    readonly List<(string Name, Module Module)> _children = [];

    protected Parameter AddParameter(string name, Init init, params int[] shape)
    {
        CheckName(name);
        var p = new Parameter(shape, init);
        _parameters.Add((name, p));
        return p;
    }

    protected T AddModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        _children.Add((name, module));
        return module;
    }

    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (name, p) in _parameters) yield return (prefix + name, p);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedParameters(prefix + name + "."))
                yield return item;
    }

    public long ParameterCount() => NamedParameters().Sum(p => p.Parameter.Length);

    /// <summary>Every module below this one (this one first, as ""), depth-first, under its dotted path (named_modules).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix.TrimEnd('.'), this);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedModules(prefix + name + "."))
                yield return item;
    }

    /// <summary>Whether <see cref="RunBlock"/> recomputes this module's blocks in backward (diffusers'
    /// enable_gradient_checkpointing). Set for a whole tree with <see cref="EnableGradientCheckpointing"/>.</summary>
    public bool GradientCheckpointing { get; private set; }

    /// <summary>Switches gradient checkpointing on (or off) for this module and every module below it.</summary>
    public void EnableGradientCheckpointing(bool enable = true)
    {
        GradientCheckpointing = enable;
        foreach (var (_, child) in _children) child.EnableGradientCheckpointing(enable);
    }

    /// <summary>
    /// The one way a model runs a block (a resnet, a transformer, a text encoder layer), in one of three modes:
    ///   no tape (sampling, frozen models)    the block's temporaries are freed as it returns; only its output stays
    ///   tape, keep activations               the block records its ops as usual
    ///   tape, gradient checkpointing         <see cref="Checkpoint.Run"/>: activations dropped, recomputed in backward
    /// The block must read its tensors from its argument array, never from captured variables: a checkpointed block
    /// runs again in backward on detached copies of <paramref name="inputs"/>.
    /// </summary>
    protected Tensor RunBlock(Func<Tensor[], Tensor> block, params Tensor[] inputs)
    {
        if (!Tape.IsRecording) return RunWithoutTape(block, inputs);
        return GradientCheckpointing ? Checkpoint.Run(block, inputs) : block(inputs);
    }

    /// <summary>A layer too cheap to recompute (a convolution in or out, a resampler): like <see cref="RunBlock"/>,
    /// but never checkpointed.</summary>
    protected static Tensor RunLayer(Func<Tensor[], Tensor> layer, params Tensor[] inputs) =>
        Tape.IsRecording ? layer(inputs) : RunWithoutTape(layer, inputs);

    static Tensor RunWithoutTape(Func<Tensor[], Tensor> block, Tensor[] inputs)
    {
        using var scope = new TensorScope();
        return scope.Keep(block(inputs));
    }

    /// <summary>Sets requires_grad on every parameter below this module (freeze a text encoder, train a UNet).</summary>
    public void RequiresGrad(bool value)
    {
        foreach (var (_, p) in NamedParameters()) p.RequiresGrad = value;
    }

    void CheckName(string name)
    {
        if (name.Length == 0 || name.Contains('.'))
            throw new ArgumentException($"module: '{name}' is not a valid name (empty or containing '.')");
        if (_parameters.Any(p => p.Name == name) || _children.Any(c => c.Name == name))
            throw new ArgumentException($"module: '{name}' is declared twice in {GetType().Name}");
    }
}

/// <summary>Children named "0", "1", ... (nn.ModuleList): down_blocks, resnets, attentions, transformer_blocks.</summary>
public sealed class ModuleList<T> : Module, IReadOnlyList<T> where T : Module
{
    readonly List<T> _items = [];

    public T Add(T module)
    {
        _items.Add(AddModule(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module));
        return module;
    }

    public T this[int index] => _items[index];
    public int Count => _items.Count;
    public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
