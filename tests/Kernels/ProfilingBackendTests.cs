// The profiling backend: a tiny UNet's training steps through it are bit-identical to the plain backend's, and it records each op by phase.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Pipeline;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;
using DreamBooth.Tests.Models;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class ProfilingBackendTests
{
    /// <summary>Three AdamW steps of the tiny UNet on a fixed batch, phases labelled when a profiler is given; returns
    /// the losses and the final weights.</summary>
    static (float[] Losses, float[] Weights) Train(IBackend backend, ProfilingBackend? profiler)
    {
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json")));
        using var store = ModelData.Initialized(backend, unet, seed: 4);
        using var adamw = new AdamW(store, 2e-3f);
        using var fixedScope = new TensorScope();
        var x0 = Tensor.FromArray(backend, TestData.ToFloat(TestData.Uniform(3, 2 * 4 * 16 * 16)), 2, 4, 16, 16);
        var context = Tensor.RandomNormal(backend, 9, 0, 2, 77, 32);
        var schedule = NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 });
        var losses = new float[3];
        for (int i = 0; i < losses.Length; i++)
        {
            using var scope = new TensorScope();
            if (profiler is not null) profiler.Phase = "forward";
            var l = DenoisingObjective.Compute(schedule, (x, t) => unet.Forward(x, t, context), x0, 1, new LossSettings(), new StepNoise(2, (ulong)i));
            if (profiler is not null) profiler.Phase = "backward";
            l.Loss.Backward();
            if (profiler is not null) profiler.Phase = "optimizer";
            adamw.ClipGradNorm();
            adamw.Step();
            store.ZeroGrad();
            losses[i] = l.Loss.Item();
        }
        var weights = new float[store.TrainableLength];
        backend.Download<float>(weights, store.TrainableValues);
        return (losses, weights);
    }

    [Test]
    public void StepsThroughTheProfilerAreBitIdenticalAndEveryOpIsRecordedByPhase()
    {
        using var plain = Backends.Create("cpu");
        var expected = Train(plain, null);
        using var profiler = new ProfilingBackend(Backends.Create("cpu"));
        var got = Train(profiler, profiler);
        Assert.That(got.Losses, Is.EqualTo(expected.Losses));
        Assert.That(got.Weights, Is.EqualTo(expected.Weights));

        var rows = profiler.Totals;
        bool Has(string phase, string op) => rows.Any(r => r.Key.Phase == phase && r.Key.Op == op && r.Value.Calls > 0);
        Assert.That(Has("forward", "conv2d") && Has("forward", "gemm") && Has("forward", "attention") && Has("forward", "group norm + silu"), "forward ops");
        Assert.That(Has("backward", "conv2d grad input") && Has("backward", "conv2d grad weight") && Has("backward", "attention backward"), "backward ops");
        Assert.That(Has("optimizer", "adamw") && Has("optimizer", "sum of squares"), "optimizer ops");
        Assert.That(rows.Where(r => r.Key.Op == "adamw").Sum(r => r.Value.Calls), Is.EqualTo(3), "one fused AdamW launch per step");
        Assert.That(rows.Values.All(t => t.Milliseconds >= 0 && t.Bytes > 0), "every row has a time and moves bytes");

        // conv_in of the tiny UNet: x [2,4,16,16], w [OutC,4,3,3], stride 1, pad 1, once per forward: FLOPs of the direct algorithm.
        var convIn = rows.Single(r => r.Key.Phase == "forward" && r.Key.Op == "conv2d" && r.Key.Shape.StartsWith("x[2,4,16,16]"));
        int outC = UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json")).BlockOutChannels[0];
        Assert.That(convIn.Value.Calls, Is.EqualTo(3));
        Assert.That(convIn.Value.Flops, Is.EqualTo(3 * 2.0 * (2 * outC * 16 * 16) * 4 * 9));

        profiler.Reset();
        profiler.Recording = false;
        using (var buffer = profiler.Allocate(DType.F32, 8)) profiler.Fill(buffer, 1f);
        Assert.That(profiler.Totals, Is.Empty, "nothing is recorded while recording is off");
    }

    [Test]
    public void ABufferOfAnotherBackendIsRefused()
    {
        using var cpu = Backends.Create("cpu");
        using var profiler = new ProfilingBackend(Backends.Create("cpu"));
        using var foreign = cpu.Allocate(DType.F32, 4);
        Assert.That(() => profiler.Fill(foreign, 0f), Throws.ArgumentException.With.Message.Contains("another backend"));
    }
}
