// LoRA (Hu et al. 2021) as peft applies it to diffusers models: a low-rank adapter per targeted nn.Linear, and the set of them.
using DreamBooth.Autograd;

namespace DreamBooth.Models.Layers;

/// <summary>
/// The low-rank update of one frozen linear layer W (Out, In):
///   y = W·x + b + B·((α/r)·A·drop(x)),   A = lora_A (r, In), B = lora_B (Out, r)
/// A starts as nn.Linear does (kaiming_uniform with a = √5, which is U(±1/√In)) and B at zero, so an adapter starts as
/// the identity update and the first step's gradient reaches only B. <see cref="Scale"/> is α/r times the strength a
/// user asks for at sampling (diffusers' lora_scale). drop is peft's lora_dropout: in training each input element is
/// zeroed with probability p and the rest scaled by 1/(1 − p); outside training it is the identity.
/// </summary>
public sealed class LoraAdapter : Module
{
    /// <summary>Philox counters per adapter and micro-step: room for 2^25 dropout draws (an input of 2^25 elements).</summary>
    public const ulong DropoutCounters = 1UL << 23;

    public Linear Down { get; }   // lora_A: (r, In)
    public Linear Up { get; }     // lora_B: (Out, r)
    public float Scale { get; set; }
    public float Dropout { get; }

    /// <summary>Where the next forward draws its dropout mask (Philox seed and counter), or null outside training. Set per
    /// micro-batch (<see cref="LoraNetwork.SetDropoutStream"/>), so a checkpointed block's recompute draws the same mask.</summary>
    public (ulong Seed, ulong Offset)? DropoutStream { get; set; }

    public LoraAdapter(int inFeatures, int outFeatures, int rank, float scale, float dropout = 0)
    {
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentException($"lora: dropout must be in [0, 1), got {dropout}");
        Down = AddModule("lora_A", new Linear(inFeatures, rank, bias: false));
        Up = AddModule("lora_B", new Linear(rank, outFeatures, bias: false, weightInit: Init.Zeros));
        Scale = scale;
        Dropout = dropout;
    }

    public Tensor Forward(Tensor x)   // (..., In) → (..., Out)
    {
        var input = Dropout > 0 && DropoutStream is { } stream ? F.Mul(x, Mask(x, stream)) : x;
        return Up.Forward(F.Scale(Down.Forward(input), Scale));   // scaled at rank r: one (…, r) tensor, not one more (…, Out)
    }

    /// <summary>1/(1 − p) where the stream's uniform is ≥ p, else 0: (x.shape).</summary>
    Tensor Mask(Tensor x, (ulong Seed, ulong Offset) stream)
    {
        if ((ulong)x.Length > 4 * DropoutCounters)
            throw new ArgumentException($"lora dropout: an input of {x.Length} elements exceeds the {4 * DropoutCounters} draws of one adapter's step");
        var u = new float[x.Length];
        using (var draws = Tensor.Zeros(x.Backend, x.Shape.ToArray()))
        {
            x.Backend.RandomUniform(draws.Storage, stream.Seed, stream.Offset);
            x.Backend.Download<float>(u, draws.Storage);
        }
        float keep = 1 / (1 - Dropout);
        for (int i = 0; i < u.Length; i++) u[i] = u[i] >= Dropout ? keep : 0;
        return Tensor.FromArray(x.Backend, u, x.Shape.ToArray());
    }
}

/// <summary>
/// The adapters of one model (a UNet or a text encoder), attached to the linear layers whose paths match the targets
/// as peft matches target_modules: the path is the target or ends with "." + target. The network is a module whose
/// parameter names are the targeted paths plus lora_A.weight / lora_B.weight, which are peft's state-dict keys, e.g.
/// "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight". Its parameters are its own store's:
/// the model's weights stay frozen, with neither gradients nor optimizer state.
/// </summary>
public sealed class LoraNetwork : Module
{
    /// <summary>diffusers' train_dreambooth_lora.py targets.</summary>
    public static readonly string[] UnetTargets = ["to_k", "to_q", "to_v", "to_out.0"];
    public static readonly string[] TextEncoderTargets = ["q_proj", "k_proj", "v_proj", "out_proj"];

    readonly Dictionary<string, PathNode> _nodes = [];
    readonly List<(string Path, Linear Target, LoraAdapter Adapter)> _adapters = [];

    public int Rank { get; }
    public double Alpha { get; }
    public IReadOnlyList<(string Path, Linear Target, LoraAdapter Adapter)> Adapters => _adapters;

    LoraNetwork(int rank, double alpha) => (Rank, Alpha) = (rank, alpha);

    /// <summary>Attaches an adapter of rank <paramref name="rank"/> to every targeted linear layer of
    /// <paramref name="model"/>; <paramref name="ranks"/> gives other ranks per path (a file's). Scale α/r × strength.</summary>
    public static LoraNetwork Attach(Module model, IReadOnlyCollection<string> targets, int rank, double alpha, double strength = 1,
        IReadOnlyDictionary<string, int>? ranks = null, double dropout = 0)
    {
        if (rank <= 0) throw new ArgumentException($"lora: the rank must be positive, got {rank}");
        var network = new LoraNetwork(rank, alpha);
        foreach (var (path, module) in model.NamedModules())
        {
            if (module is not Linear linear || !targets.Any(t => path == t || path.EndsWith("." + t, StringComparison.Ordinal))) continue;
            if (linear.Adapter is not null) throw new InvalidOperationException($"lora: {path} already has an adapter");
            int r = ranks?.GetValueOrDefault(path, rank) ?? rank;
            var adapter = new LoraAdapter(linear.InFeatures, linear.OutFeatures, r, (float)(strength * alpha / r), (float)dropout);
            network.Node(path).Set(adapter);
            linear.Adapter = adapter;
            network._adapters.Add((path, linear, adapter));
        }
        if (network._adapters.Count == 0)
            throw new ArgumentException($"lora: no linear layer matches the targets {string.Join(", ", targets)}");
        return network;
    }

    /// <summary>Training: each adapter draws its dropout mask from its own counter range after <paramref name="stream"/>
    /// (adapter i from Offset + (first + i)·<see cref="LoraAdapter.DropoutCounters"/>); null: no dropout (sampling).</summary>
    public void SetDropoutStream((ulong Seed, ulong Offset)? stream, int first = 0)
    {
        for (int i = 0; i < _adapters.Count; i++)
            _adapters[i].Adapter.DropoutStream = stream is { } s ? (s.Seed, s.Offset + (ulong)(first + i) * LoraAdapter.DropoutCounters) : null;
    }

    /// <summary>Removes the adapters from their layers (the model computes as before it was attached).</summary>
    public void Detach()
    {
        foreach (var (_, target, adapter) in _adapters)
            if (ReferenceEquals(target.Adapter, adapter)) target.Adapter = null;
    }

    /// <summary>Folds every adapter into its layer's weight, W += scale·B·A, and detaches it: the model then computes
    /// the adapted function with no adapter (merge-lora, fuse_lora).</summary>
    public void Merge()
    {
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        foreach (var (_, target, adapter) in _adapters)
        {
            var delta = F.Scale(F.MatMul(adapter.Up.Weight.Value, adapter.Down.Weight.Value), adapter.Scale);   // (Out, In)
            var merged = F.Add(target.Weight.Value, delta);
            target.Weight.Value.Backend.Copy(target.Weight.Value.Storage, merged.Storage);
        }
        Detach();
    }

    PathNode Node(string path)
    {
        if (_nodes.TryGetValue(path, out var node)) return node;
        int dot = path.LastIndexOf('.');
        Module parent = dot < 0 ? this : Node(path[..dot]);
        string name = dot < 0 ? path : path[(dot + 1)..];
        node = parent is LoraNetwork ? AddModule(name, new PathNode()) : ((PathNode)parent).Add(name);
        _nodes.Add(path, node);
        return node;
    }

    /// <summary>One segment of a targeted path; the targeted layer's node holds its adapter's lora_A and lora_B.</summary>
    sealed class PathNode : Module
    {
        public PathNode Add(string name) => AddModule(name, new PathNode());
        public void Set(LoraAdapter adapter)
        {
            AddModule("lora_A", adapter.Down);
            AddModule("lora_B", adapter.Up);
        }
    }
}
