// 8-bit AdamW over parameter stores: block-wise quantised moments for large tensors, f32 moments for small ones.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// bitsandbytes' AdamW8bit (diffusers' --use_8bit_adam): the update rule of <see cref="AdamW"/>, with each moment of a
/// tensor of at least <see cref="DynamicMap.MinQuantizedLength"/> parameters stored as one byte per parameter plus one
/// f32 absmax per block of <see cref="DynamicMap.BlockSize"/> (IBackend.AdamW8bit; the rule is written out in
/// AdamW8bitReference). Smaller tensors keep f32 moments, as bitsandbytes does. The state shrinks from 8 bytes per
/// parameter to about 2.03.
///
/// Blocks start at each tensor's first parameter, as bitsandbytes' per-tensor state does. A step still takes few
/// launches: consecutive large tensors share one when every tensor but the last fills whole blocks, and consecutive
/// small tensors share one f32 launch.
///
/// State names follow bitsandbytes: state1/absmax1 (first moment codes and block maxima), state2/absmax2 (second
/// moment), and exp_avg/exp_avg_sq for the f32 moments of small tensors; a store g > 0 adds the suffix ".g".
/// </summary>
public sealed class AdamW8bit : Optimizer
{
    /// <summary>One launch: a run of consecutive trainable parameters and the slices of their state (MMax and VMax null
    /// for an f32 run).</summary>
    sealed record Launch(ParameterStore Store, DeviceBuffer Param, DeviceBuffer Grad, DeviceBuffer M, DeviceBuffer? MMax,
        DeviceBuffer V, DeviceBuffer? VMax);

    readonly List<(string Name, DeviceBuffer Buffer)> _state = [];
    readonly List<Launch> _launches = [];

    public AdamW8bit(IReadOnlyList<ParameterStore> stores, float lr, float beta1 = 0.9f, float beta2 = 0.999f, float weightDecay = 1e-2f,
        float eps = 1e-8f) : base(stores, lr)
    {
        AdamW.CheckHyperParameters(beta1, beta2, weightDecay, eps);
        (Beta1, Beta2, WeightDecay, Eps) = (beta1, beta2, weightDecay, eps);
        for (int g = 0; g < stores.Count; g++) Plan(stores[g], g);
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float WeightDecay { get; }
    public float Eps { get; }

    public override IReadOnlyList<(string Name, DeviceBuffer Buffer)> StateBuffers => _state;

    /// <summary>The state of n parameters in 8 bits before they are allocated: two codes each and two absmax per block
    /// (the f32 moments of tensors under MinQuantizedLength add a little).</summary>
    public static long EstimatedStateBytes(long n) => 2 * n + 2 * sizeof(float) * DynamicMap.Blocks(n);

    /// <summary>Groups the store's trainable parameters into runs, allocates the state and slices it per run.</summary>
    void Plan(ParameterStore store, int group)
    {
        var runs = new List<(long Offset, long Length, bool Quantized)>();
        foreach (var p in store.Named.Select(n => n.Parameter).Where(p => p.RequiresGrad).OrderBy(p => store.Offsets[p]))
        {
            long offset = store.Offsets[p], length = p.Length;
            bool quantized = length >= DynamicMap.MinQuantizedLength;
            if (runs.Count > 0 && runs[^1].Quantized == quantized && (!quantized || runs[^1].Length % DynamicMap.BlockSize == 0))
                runs[^1] = runs[^1] with { Length = runs[^1].Length + length };
            else runs.Add((offset, length, quantized));
        }
        long codes = runs.Where(r => r.Quantized).Sum(r => r.Length), blocks = runs.Where(r => r.Quantized).Sum(r => DynamicMap.Blocks(r.Length));
        long small = runs.Where(r => !r.Quantized).Sum(r => r.Length);
        DeviceBuffer? Add(string name, DType dtype, long length)
        {
            if (length == 0) return null;
            var buffer = store.Backend.Allocate(dtype, length);
            _state.Add((StateName(name, group), buffer));
            return buffer;
        }
        DeviceBuffer? m8 = Add("state1", DType.U8, codes), mMax = Add("absmax1", DType.F32, blocks);
        DeviceBuffer? v8 = Add("state2", DType.U8, codes), vMax = Add("absmax2", DType.F32, blocks);
        DeviceBuffer? m32 = Add("exp_avg", DType.F32, small), v32 = Add("exp_avg_sq", DType.F32, small);

        long codeAt = 0, blockAt = 0, smallAt = 0;
        foreach (var (offset, length, quantized) in runs)
        {
            DeviceBuffer param = store.Values.Slice(offset, length), grad = store.Grads.Slice(offset, length);
            if (quantized)
            {
                long b = DynamicMap.Blocks(length);
                _launches.Add(new Launch(store, param, grad, m8!.Slice(codeAt, length), mMax!.Slice(blockAt, b), v8!.Slice(codeAt, length), vMax!.Slice(blockAt, b)));
                (codeAt, blockAt) = (codeAt + length, blockAt + b);
            }
            else
            {
                _launches.Add(new Launch(store, param, grad, m32!.Slice(smallAt, length), null, v32!.Slice(smallAt, length), null));
                smallAt += length;
            }
        }
    }

    protected override void Update(float gradScale)
    {
        var step = new AdamWStep(Lr, StepCount, Beta1, Beta2, Eps, WeightDecay, gradScale);
        foreach (var l in _launches)
        {
            if (l.MMax is { } mMax) l.Store.Backend.AdamW8bit(l.Param, l.Grad, l.M, mMax, l.V, l.VMax!, step, l.Param.Length);
            else l.Store.Backend.AdamW(l.Param, l.Grad, l.M, l.V, step, l.Param.Length);
        }
    }
}
