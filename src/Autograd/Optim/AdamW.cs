// AdamW over a parameter store: both moments as flat buffers, each step one fused backend launch.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// torch.optim.AdamW with diffusers' train_dreambooth defaults (betas 0.9/0.999, weight decay 1e-2, eps 1e-8). The
/// first and second moments m, v are (TrainableLength) f32 buffers parallel to each store's trainable values and
/// gradients, so a step is one <see cref="IBackend.AdamW"/> launch per store. The update rule, in PyTorch's
/// order of operations, is written out in the reference kernel (AdamWReference).
/// </summary>
public sealed class AdamW : Optimizer
{
    public AdamW(ParameterStore store, float lr, float beta1 = 0.9f, float beta2 = 0.999f, float weightDecay = 1e-2f, float eps = 1e-8f)
        : this([store], lr, beta1, beta2, weightDecay, eps) { }

    /// <summary>One optimizer over several stores (a UNet and a text encoder): one update rule, one LR, one clip.</summary>
    public AdamW(IReadOnlyList<ParameterStore> stores, float lr, float beta1 = 0.9f, float beta2 = 0.999f, float weightDecay = 1e-2f,
        float eps = 1e-8f) : base(stores, lr)
    {
        CheckHyperParameters(beta1, beta2, weightDecay, eps);
        (Beta1, Beta2, WeightDecay, Eps) = (beta1, beta2, weightDecay, eps);
        M = stores.Select(s => s.Backend.Allocate(DType.F32, s.TrainableLength)).ToArray();
        V = stores.Select(s => s.Backend.Allocate(DType.F32, s.TrainableLength)).ToArray();
    }

    /// <summary>Betas in [0, 1), weight decay ≥ 0, eps > 0: checked before any state is allocated.</summary>
    internal static void CheckHyperParameters(float beta1, float beta2, float weightDecay, float eps)
    {
        if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
            throw new ArgumentException($"AdamW: betas ({beta1}, {beta2}) must lie in [0, 1)");
        if (!(weightDecay >= 0) || !(eps > 0))
            throw new ArgumentException($"AdamW: need weight decay ≥ 0 and eps > 0, got {weightDecay} and {eps}");
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float WeightDecay { get; }
    public float Eps { get; }

    /// <summary>First moment (exp_avg) of each store: (TrainableLength).</summary>
    public IReadOnlyList<DeviceBuffer> M { get; }
    /// <summary>Second moment (exp_avg_sq) of each store: (TrainableLength).</summary>
    public IReadOnlyList<DeviceBuffer> V { get; }

    public override IReadOnlyList<(string Name, DeviceBuffer Buffer)> StateBuffers =>
        Enumerable.Range(0, Stores.Count).SelectMany(g => new[] { (StateName("exp_avg", g), M[g]), (StateName("exp_avg_sq", g), V[g]) }).ToList();

    protected override void Update(float gradScale)
    {
        for (int g = 0; g < Stores.Count; g++)
        {
            var s = Stores[g];
            s.Backend.AdamW(s.TrainableValues, s.Grads, M[g], V[g],
                new AdamWStep(Lr, StepCount, Beta1, Beta2, Eps, WeightDecay, gradScale), s.TrainableLength);
        }
    }
}
