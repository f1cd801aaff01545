// Gradient checkpointing on a stack of UNet blocks: the same gradients bit for bit, and the peak memory with and without.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Layers;
using DreamBooth.Models.UNet;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class UNetCheckpointTests
{
    /// <summary>What a UNet level runs: a ResnetBlock2D with the time embedding, then a Transformer2DModel with self- and
    /// cross-attention, repeated.</summary>
    sealed class Level : Module
    {
        public readonly ModuleList<ResnetBlock2D> Resnets;
        public readonly ModuleList<Transformer2DModel> Attentions;

        public Level(int channels, int temb, int context, int depth)
        {
            Resnets = AddModule("resnets", new ModuleList<ResnetBlock2D>());
            Attentions = AddModule("attentions", new ModuleList<Transformer2DModel>());
            for (int i = 0; i < depth; i++)
            {
                Resnets.Add(new ResnetBlock2D(channels, channels, temb, groups: 8, eps: 1e-5f));
                Attentions.Add(new Transformer2DModel(channels, heads: 4, context, groups: 8, useLinearProjection: false, onlyCrossAttention: false));
            }
        }
    }

    [Test]
    public void CheckpointedUNetBlocksGiveTheSameGradientsWithALowerPeak()
    {
        using var backend = Backends.Create("cpu");
        const int channels = 64, side = 16, temb = 128, contextDim = 32, depth = 3;
        var level = new Level(channels, temb, contextDim, depth);
        using var store = ModelData.Initialized(backend, level, seed: 3);

        (long Peak, float[] Grads) Measure(bool checkpoint)
        {
            store.ZeroGrad();
            using var scope = new TensorScope();
            var x = Tensor.RandomNormal(backend, 1, 0, 2, channels, side, side);
            var t = Tensor.RandomNormal(backend, 2, 0, 2, temb);
            var context = Tensor.RandomNormal(backend, 3, 0, 2, 8, contextDim);
            var target = Tensor.RandomNormal(backend, 4, 0, 2, channels, side, side);
            long baseline = backend.Memory.CurrentBytes;
            backend.Memory.ResetPeak();
            using (var step = new TensorScope())
            {
                var h = x;
                for (int i = 0; i < depth; i++)
                {
                    var (resnet, attention) = (level.Resnets[i], level.Attentions[i]);
                    Tensor Block(Tensor[] a) => attention.Forward(resnet.Forward(a[0], a[1]), a[2]);
                    h = checkpoint ? Checkpoint.Run(Block, h, t, context) : Block([h, t, context]);
                }
                F.MseLoss(h, target).Backward();
            }
            var grads = new float[store.TrainableLength];
            backend.Download<float>(grads, store.Grads);
            return (backend.Memory.PeakBytes - baseline, grads);
        }

        var plain = Measure(checkpoint: false);
        var ckpt = Measure(checkpoint: true);
        TestContext.Out.WriteLine($"{depth} × (ResnetBlock2D + Transformer2DModel) at (2, {channels}, {side}, {side}), peak above " +
                                  $"parameters and inputs: plain {plain.Peak / 1024} KiB, checkpointed {ckpt.Peak / 1024} KiB");
        foreach (var (name, p) in store.Named)           // a zero gradient everywhere would also be "the same"
            Assert.That(plain.Grads.AsSpan((int)store.Offsets[p], (int)p.Length).ToArray(), Has.Some.Not.EqualTo(0f), $"gradient of {name}");
        Assert.That(ckpt.Grads, Is.EqualTo(plain.Grads), "bit for bit on the cpu tier");
        Assert.That(ckpt.Peak, Is.LessThan(plain.Peak));
    }
}
