// `unet`: a whole UNet2DConditionModel timed as the peer's unet-step does it: a no-grad forward and an AdamW training step.
using System.Diagnostics;
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.UNet;

namespace DreamBooth.Perf;

static class UNetBench
{
    /// <summary>The same work as the peer's `unet-step --config C --batch B --resolution R --steps S`: random weights
    /// (PyTorch's default init), a sample (B, in, R, R), timesteps, encoder states (B, 77, cross_attention_dim); then the
    /// median over S runs of a forward without the tape and of forward + MSE against a random target + backward + AdamW
    /// (lr 5e-6, weight decay 1e-2). Each is warmed up (Median: at least once, for WarmupTime and a quiet JIT) where the peer warms
    /// up once: .NET first runs a method's unoptimised code and compiles the optimised one in the background after about
    /// 30 calls, so a short warm-up times the compiler (on one core, the demo-size UNet's step measured 825-850 ms after
    /// one warm-up step).</summary>
    public static void Run(Options o)
    {
        string path = o.Text("config") ?? throw new ArgumentException("unet: --config PATH/unet/config.json is required");
        var config = UNet2DConditionConfig.Load(path);
        int batch = o.Int("batch", 1), steps = o.Int("steps", 5), side = o.Int("resolution", config.SampleSize ?? 64);
        using var backend = Backends.Create(o.Text("device") ?? "cpu");
        var unet = new UNet2DConditionModel(config);
        using var store = new ParameterStore(backend, unet);
        store.Initialize(seed: 0);
        var optimizer = new AdamW(store, lr: 5e-6f, weightDecay: 1e-2f);
        Console.WriteLine($"{path}: {store.Length:N0} parameters; batch {batch}, {side}×{side}, {backend.Name} backend, " +
                          $"{Environment.ProcessorCount} cores; median of {steps} after {WarmupTime.TotalSeconds:F0} s of warm-up");

        using var inputs = new TensorScope();
        var sample = Tensor.RandomNormal(backend, 1, 0, batch, config.InChannels, side, side);
        var context = Tensor.RandomNormal(backend, 2, 0, batch, 77, config.CrossAttentionDim);
        var target = Tensor.RandomNormal(backend, 3, 0, batch, config.OutChannels, side, side);
        var timesteps = Enumerable.Range(0, batch).Select(i => 999f - 37 * i).ToArray();

        double forward = Median(steps, () =>
        {
            using var noGrad = Tape.NoGrad();
            using var scope = new TensorScope();
            unet.Forward(sample, timesteps, context);
            backend.Synchronize();
        });
        backend.Memory.ResetPeak();
        double step = Median(steps, () =>
        {
            using var scope = new TensorScope();
            store.ZeroGrad();
            F.MseLoss(unet.Forward(sample, timesteps, context), target).Backward();
            optimizer.Step();
            backend.Synchronize();
        });
        Console.WriteLine($"forward {forward:F1} ms; training step {step:F1} ms; peak {backend.Memory.PeakBytes / 1048576.0:F0} MiB " +
                          "of tensors (parameters, gradients, moments and activations)");
    }

    /// <summary>The warm-up of each timed part, as in `dreambooth profile`: this long, then until the JIT has been quiet
    /// for 1 s (Warmup.Run).</summary>
    static readonly TimeSpan WarmupTime = TimeSpan.FromSeconds(10), QuietTime = TimeSpan.FromSeconds(1), MaxWarmupTime = TimeSpan.FromSeconds(60);

    static double Median(int runs, Action work)
    {
        Warmup.Run(_ => work(), 1, WarmupTime, QuietTime, MaxWarmupTime);
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            work();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }
}
