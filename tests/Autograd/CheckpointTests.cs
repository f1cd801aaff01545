// Gradient checkpointing: bit-for-bit the gradients of the plain blocks, and a lower peak of memory.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

public class CheckpointTests
{
    static IEnumerable<string> BackendNames => Backends.Names;

    sealed class Stack : Module
    {
        public readonly ModuleList<ResidualBlock> Blocks;

        public Stack(int dim, int depth)
        {
            Blocks = AddModule("blocks", new ModuleList<ResidualBlock>());
            for (int i = 0; i < depth; i++) Blocks.Add(new ResidualBlock(dim));
        }
    }

    static float[] Read(IBackend backend, DeviceBuffer buffer)
    {
        var values = new float[buffer.Length];
        backend.Download<float>(values, buffer);
        return values;
    }

    /// <summary>Loss, flat parameter gradients, dx and d(gain) of: h1 = block0(x)·gain, h2 = block1(h1, h1), loss =
    /// mse(h2 + x + h1, target). x is used inside block 0 and after it, h1 inside block 1 (twice) and after it; gain is
    /// a leaf outside the store that block 0 captures.</summary>
    static (float Loss, float[] Grads, float[] Dx, float[] DGain) Run(IBackend backend, ParameterStore store, Stack net,
        bool checkpoint, DType? autocast = null)
    {
        store.ZeroGrad();
        using var scope = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 6, 8);
        x.RequiresGrad = true;
        var gain = Tensor.FromArray(backend, [0.75f], 1);
        gain.RequiresGrad = true;
        var target = Tensor.RandomNormal(backend, 2, 0, 6, 8);
        Tensor Block0(Tensor[] t) => F.Mul(net.Blocks[0].Forward(t[0]), gain);
        Tensor Block1(Tensor[] t) => F.Add(net.Blocks[1].Forward(t[0]), F.Scale(t[1], 0.5f));
        Tensor Apply(Func<Tensor[], Tensor> block, params Tensor[] inputs) =>
            checkpoint ? Checkpoint.Run(block, inputs) : block(inputs);
        Tensor loss;
        using (Autocast.Enable(autocast ?? DType.F32))
        {
            var h1 = Apply(Block0, x);
            var h2 = Apply(Block1, h1, h1);
            loss = F.MseLoss(F.Add(F.Add(h2, x), h1), target);
        }
        loss.Backward();
        return (loss.Item(), Read(backend, store.Grads), x.Grad!.ToArray(), gain.Grad!.ToArray());
    }

    [TestCaseSource(nameof(BackendNames))]
    public void GradientsAreBitForBitThoseOfThePlainBlocks(string backendName)
    {
        using var backend = Backends.Create(backendName);
        var net = new Stack(8, 2);
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 4);
        var plain = Run(backend, store, net, checkpoint: false);
        var ckpt = Run(backend, store, net, checkpoint: true);
        Assert.That(ckpt.Loss, Is.EqualTo(plain.Loss));
        Assert.That(ckpt.Grads, Is.EqualTo(plain.Grads), "parameter gradients");
        Assert.That(ckpt.Dx, Is.EqualTo(plain.Dx), "input used inside and after the block");
        Assert.That(ckpt.DGain, Is.EqualTo(plain.DGain), "captured leaf");
        Assert.That(plain.Grads, Has.Some.Not.EqualTo(0f));
    }

    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void TheRecomputeRunsUnderTheForwardsAutocastMode(DType half)
    {
        using var backend = Backends.Create("cpu");
        var net = new Stack(8, 2);
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 4);
        var plain = Run(backend, store, net, checkpoint: false, half);
        var ckpt = Run(backend, store, net, checkpoint: true, half);   // backward runs after the autocast block closed
        Assert.That(ckpt.Grads, Is.EqualTo(plain.Grads));
        Assert.That(ckpt.Dx, Is.EqualTo(plain.Dx));
        Assert.That(plain.Grads, Is.Not.EqualTo(Run(backend, store, net, checkpoint: false).Grads), "autocast changes the numbers");
    }

    [Test]
    public void WithoutRecordingTheBlockSimplyRuns()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var x = Tensor.FromArray(backend, [1f, 2f], 2);
        x.RequiresGrad = true;
        using var noGrad = Tape.NoGrad();
        var y = Checkpoint.Run(t => F.Scale(t[0], 3f), x);
        Assert.That(y.ToArray(), Is.EqualTo(new[] { 3f, 6f }));
        Assert.That(y.RequiresGrad, Is.False);
    }

    [Test]
    public void CheckpointedBlocksPeakLowerThanPlainOnes()
    {
        using var backend = Backends.Create("cpu");
        const int dim = 64, rows = 512, depth = 4;
        var net = new Stack(dim, depth);
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 8);

        (long Peak, float[] Grads) Measure(bool checkpoint)
        {
            store.ZeroGrad();
            using var scope = new TensorScope();
            var x = Tensor.RandomNormal(backend, 5, 0, rows, dim);
            var target = Tensor.RandomNormal(backend, 6, 0, rows, dim);
            long baseline = backend.Memory.CurrentBytes;
            backend.Memory.ResetPeak();
            using (var step = new TensorScope())
            {
                var h = x;
                foreach (var block in net.Blocks)
                    h = checkpoint ? Checkpoint.Run(t => block.Forward(t[0]), h) : block.Forward(h);
                F.MseLoss(h, target).Backward();
            }
            return (backend.Memory.PeakBytes - baseline, Read(backend, store.Grads));
        }

        var plain = Measure(checkpoint: false);
        var ckpt = Measure(checkpoint: true);
        long activation = (long)rows * dim * sizeof(float);
        TestContext.Out.WriteLine($"{depth} residual MLP blocks ({rows}×{dim}, hidden {4 * dim}), peak above parameters and inputs: " +
                                  $"plain {plain.Peak / 1024} KiB, checkpointed {ckpt.Peak / 1024} KiB " +
                                  $"({(double)plain.Peak / activation:F1} vs {(double)ckpt.Peak / activation:F1} block outputs)");
        Assert.That(ckpt.Grads, Is.EqualTo(plain.Grads));
        Assert.That(ckpt.Peak, Is.LessThan(plain.Peak));
    }
}
