// Optimizer: the base of every update rule over a ParameterStore's flat buffers: step count, clipping, saved state.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// An optimizer updates the trainable prefix of one or more <see cref="ParameterStore"/>s (PyTorch's param groups,
/// e.g. a UNet and the text encoder trained beside it) from their flat gradient buffers:
/// <code>
/// loss.Backward();
/// optimizer.ClipGradNorm(1f);      // one reduction; the factor rides along in the next Step
/// optimizer.Step();                // one launch per store over [0, TrainableLength)
/// store.ZeroGrad();
/// </code>
/// Its state (step count and per-parameter buffers such as Adam's moments) is exposed by name so a trainer can write
/// it to a checkpoint and resume bit for bit.
/// </summary>
public abstract class Optimizer : IDisposable
{
    float _clipFactor = 1f;

    protected Optimizer(IReadOnlyList<ParameterStore> stores, float lr)
    {
        if (stores.Count == 0 || stores.Any(s => s.TrainableLength == 0))
            throw new ArgumentException($"{GetType().Name}: every parameter store needs trainable parameters");
        if (!(lr >= 0)) throw new ArgumentOutOfRangeException(nameof(lr), lr, $"{GetType().Name}: learning rate must be ≥ 0");
        Stores = stores;
        Lr = lr;
    }

    /// <summary>The stores this optimizer updates, each with its own state buffers; clipping measures them together.</summary>
    public IReadOnlyList<ParameterStore> Stores { get; }

    protected IBackend Backend => Stores[0].Backend;

    /// <summary>The learning rate of the next step (a schedule sets it before each step).</summary>
    public float Lr { get; set; }

    /// <summary>Steps taken so far; the next step is number StepCount + 1 (Adam's bias correction counts from 1).</summary>
    public int StepCount { get; private set; }

    /// <summary>The state buffers by name (PyTorch's state keys), f32 or u8; the buffers of store g > 0 carry the suffix
    /// ".g" ("exp_avg.1").</summary>
    public abstract IReadOnlyList<(string Name, DeviceBuffer Buffer)> StateBuffers { get; }

    /// <summary>
    /// torch.nn.utils.clip_grad_norm_: the total L2 norm of all trainable gradients (one SumSquares over each flat
    /// buffer), and, when it exceeds <paramref name="maxNorm"/>, gradients scaled by maxNorm / (norm + 1e-6). The
    /// gradients are not rewritten: the factor is folded into the next <see cref="Step"/>'s gradient scale, which the
    /// fused update multiplies in anyway, saving a pass over the gradients. Returns the norm before clipping.
    /// </summary>
    public float ClipGradNorm(float maxNorm = 1f)
    {
        float norm = GradNorm.Total(Stores);
        _clipFactor = GradNorm.ClipFactor(norm, maxNorm);
        return norm;
    }

    /// <summary>One update with gradients g = grads · <paramref name="gradScale"/> · (the pending clip factor).</summary>
    public void Step(float gradScale = 1f)
    {
        float scale = gradScale * _clipFactor;
        _clipFactor = 1f;
        if (!float.IsFinite(scale))
            throw new ArgumentException($"{GetType().Name}: gradient scale {scale} is not finite (a non-finite gradient norm " +
                                        "from ClipGradNorm means some gradient is Inf or NaN)");
        StepCount++;
        Update(scale);
    }

    /// <summary>Applies step number <see cref="StepCount"/> to every store with gradients multiplied by gradScale.</summary>
    protected abstract void Update(float gradScale);

    /// <summary>The bytes of all state buffers: what the optimizer adds to the weights and gradients in memory.</summary>
    public long StateBytes => StateBuffers.Sum(b => b.Buffer.Bytes);

    /// <summary>The step count and a host copy of every state buffer: f32 ones as floats, 8-bit codes as bytes.</summary>
    public OptimizerState SaveState()
    {
        var floats = new Dictionary<string, float[]>();
        var codes = new Dictionary<string, byte[]>();
        foreach (var (name, buffer) in StateBuffers)
        {
            if (buffer.DType == DType.U8) Backend.Download<byte>(codes[name] = new byte[buffer.Length], buffer);
            else Backend.Download<float>(floats[name] = new float[buffer.Length], buffer);
        }
        return new OptimizerState(StepCount, floats, codes);
    }

    /// <summary>Restores what <see cref="SaveState"/> returned (for the same parameters): the next step continues
    /// exactly where the saved run left off.</summary>
    public void LoadState(OptimizerState state)
    {
        string what = GetType().Name;
        if (state.Step < 0) throw new ArgumentException($"{what}: saved step count {state.Step} is negative");
        var expected = StateBuffers.Select(b => b.Name).ToHashSet();
        var saved = state.Buffers.Keys.Concat(state.Codes.Keys).ToList();
        if (!expected.SetEquals(saved))
            throw new ArgumentException($"{what}: saved state holds [{string.Join(", ", saved)}], expected [{string.Join(", ", expected)}]");
        foreach (var (name, buffer) in StateBuffers)
        {
            bool isCodes = buffer.DType == DType.U8;
            int? length = isCodes ? state.Codes.GetValueOrDefault(name)?.Length : state.Buffers.GetValueOrDefault(name)?.Length;
            if (length is null)   // the name is there (checked above), under the other type
                throw new ArgumentException($"{what}: saved '{name}' is {(isCodes ? "f32" : "u8")}, the optimizer keeps it as {buffer.DType.Name()}");
            if (length != buffer.Length)
                throw new ArgumentException($"{what}: saved '{name}' has {length} values, the optimizer keeps {buffer.Length} " +
                                            "(saved for other trainable parameters?)");
        }
        foreach (var (name, buffer) in StateBuffers)
        {
            if (buffer.DType == DType.U8) Backend.Upload<byte>(buffer, state.Codes[name]);
            else Backend.Upload<float>(buffer, state.Buffers[name]);
        }
        StepCount = state.Step;
        _clipFactor = 1f;
    }

    /// <summary>A state buffer's name for store <paramref name="group"/>: the plain name for the first store.</summary>
    protected static string StateName(string name, int group) => group == 0 ? name : $"{name}.{group}";

    /// <summary>Zeroes the gradients of every store.</summary>
    public void ZeroGrad()
    {
        foreach (var store in Stores) store.ZeroGrad();
    }

    public void Dispose()
    {
        foreach (var (_, buffer) in StateBuffers) buffer.Dispose();
    }
}

/// <summary>An optimizer's state on the host: the number of steps taken, each f32 state buffer by name (e.g. "exp_avg"
/// and "exp_avg_sq" for AdamW) and each u8 one (AdamW8bit's "state1" and "state2" codes).</summary>
public sealed record OptimizerState(int Step, IReadOnlyDictionary<string, float[]> Buffers, IReadOnlyDictionary<string, byte[]> Codes);
