// The tape itself: gradients of the core ops, accumulation, NoGrad, scopes and the parameter store.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

public class TapeGradChecks
{
    static readonly IBackend Reference = Backends.Create("reference");
    static (float[], int[]) In(int seed, params int[] shape) => TensorGradCheck.Input(seed, 1.0, shape);

    [Test] public void Linear() => TensorGradCheck.Check(Reference, t => F.Linear(t[0], t[1], t[2]),
        [In(1, 2, 3, 5), In(2, 4, 5), In(3, 4)], "linear");

    [Test] public void LinearOnATransposedWeightView() => TensorGradCheck.Check(Reference,
        t => F.Linear(t[0], F.Permute(t[1], 1, 0), t[2]), [In(1, 2, 3, 5), In(2, 5, 4), In(3, 4)], "linear, permuted weight");

    [Test] public void LinearWithoutBias() => TensorGradCheck.Check(Reference, t => F.Linear(t[0], t[1]),
        [In(1, 2, 3, 5), In(2, 4, 5)], "linear without bias");

    [Test] public void MatMul2d() => TensorGradCheck.Check(Reference, t => F.MatMul(t[0], t[1]),
        [In(1, 3, 4), In(2, 4, 5)], "matmul 2-d");

    [Test] public void MatMulBatched() => TensorGradCheck.Check(Reference, t => F.MatMul(t[0], t[1]),
        [In(1, 2, 3, 4), In(2, 2, 4, 5)], "matmul");

    [Test] public void BroadcastArithmetic() => TensorGradCheck.Check(Reference,
        t => F.Div(F.Mul(F.Sub(t[0], t[1]), t[0]), F.Add(t[2], t[2])),
        [In(1, 2, 3, 4), In(2, 3, 1), (Enumerable.Range(0, 4).Select(i => 1.5f + i * 0.25f).ToArray(), [4])], "broadcast arithmetic");

    /// <summary>The first operand is the one broadcast (along the leading and a middle axis), so its gradient is the
    /// sum over those axes; the second is broadcast along the others. Divisors lie in [0.5, 1.5).</summary>
    [TestCase(BinaryOp.Add)]
    [TestCase(BinaryOp.Sub)]
    [TestCase(BinaryOp.Mul)]
    [TestCase(BinaryOp.Div)]
    public void BroadcastOfTheFirstOperand(BinaryOp op) => TensorGradCheck.Check(Reference, t => F.Binary(op, t[0], t[1]),
        [In(1, 3, 1, 4), (In(2, 2, 1, 5, 1).Item1.Select(v => 1f + 0.5f * v).ToArray(), [2, 1, 5, 1])],
        $"broadcast {op}, first operand (3, 1, 4) against (2, 1, 5, 1)");

    [TestCase(new[] { 0, 2 })]
    [TestCase(new[] { -1 })]
    [TestCase(new[] { 1, 0, 2 })]
    public void SumOverAxes(int[] axes) => TensorGradCheck.Check(Reference, t => F.Sum(t[0], axes),
        [In(1, 3, 4, 5)], $"sum over [{string.Join(", ", axes)}]");

    [Test] public void PermuteReshapeAndSums() => TensorGradCheck.Check(Reference,
        t => F.Scale(F.Mean(F.Reshape(F.Permute(t[0], 2, 0, 1), 4, -1), 1), 3f),
        [In(1, 2, 3, 4)], "permute/reshape/mean");

    [Test] public void MseLossBothSides() => TensorGradCheck.Check(Reference, t => F.MseLoss(F.Copy(t[0]), t[1]),
        [In(1, 3, 7), In(2, 3, 7)], "mse loss");

    [Test]
    public void ATensorUsedTwiceGetsBothContributions()
    {
        using var scope = new TensorScope();
        var x = Tensor.FromArray(Reference, [1f, -2f, 3f], 3);
        x.RequiresGrad = true;
        F.Sum(F.Add(F.Mul(x, x), x)).Backward();          // d/dx Σ (x² + x) = 2x + 1
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(new[] { 3f, -3f, 7f }));
    }

    [Test]
    public void LeafGradientsAccumulateAcrossBackwardCalls()
    {
        using var scope = new TensorScope();
        var x = Tensor.FromArray(Reference, [2f], 1);
        x.RequiresGrad = true;
        F.Sum(F.Scale(x, 3f)).Backward();
        F.Sum(F.Scale(x, 4f)).Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(7f));
    }

    [Test]
    public void NoGradRecordsNothing()
    {
        using var scope = new TensorScope();
        var x = Tensor.FromArray(Reference, [2f], 1);
        x.RequiresGrad = true;
        using (Tape.NoGrad())
        {
            var y = F.Scale(x, 3f);
            Assert.That(y.RequiresGrad, Is.False);
            Assert.Throws<InvalidOperationException>(() => F.Sum(y).Backward());
        }
    }

    [Test]
    public void ScopesFreeEverythingTheyCreated()
    {
        using var backend = Backends.Create("cpu");
        long before = backend.Memory.CurrentBytes;
        using (var scope = new TensorScope())
        {
            var x = Tensor.RandomNormal(backend, 1, 0, 64, 32);
            x.RequiresGrad = true;
            var w = Tensor.RandomNormal(backend, 2, 0, 16, 32);
            F.MseLoss(F.Linear(F.Permute(F.Reshape(x, 32, 64), 1, 0), w), Tensor.Zeros(backend, 64, 16)).Backward();
            Assert.That(backend.Memory.CurrentBytes, Is.GreaterThan(before));
        }
        Assert.That(backend.Memory.CurrentBytes, Is.EqualTo(before));
    }

    [Test]
    public void EntriesRecordedAfterABackwardInANestedScopeLeaveWithIt()
    {
        int start = Tape.Count;
        using var outer = new TensorScope();
        var x = Tensor.FromArray(Reference, [2f], 1);
        x.RequiresGrad = true;
        var pending = F.Scale(x, 2f);                      // on the tape when the inner scope opens
        using (new TensorScope())
        {
            F.Sum(pending).Backward();                     // empties the tape below the inner scope's mark
            F.Scale(x, 3f);                                // recorded inside the inner scope, freed with it
        }
        Assert.That(Tape.Count, Is.EqualTo(start));
    }

    [Test]
    public void KeepRefusesTensorsStillOnTheTape()
    {
        using var outer = new TensorScope();
        var x = Tensor.FromArray(Reference, [2f], 1);
        x.RequiresGrad = true;
        using var inner = new TensorScope();
        var y = F.Scale(x, 2f);
        Assert.Throws<InvalidOperationException>(() => inner.Keep(y));
        var kept = inner.Keep(F.Copy(y.Detach()));
        inner.Dispose();
        Assert.That(kept.Item(), Is.EqualTo(4f));
    }
}

public class ParameterStoreTests
{
    sealed class Block : Module
    {
        public readonly Parameter Weight, Bias;
        public Block(int inF, int outF)
        {
            Weight = AddParameter("weight", Init.FanIn(inF), outF, inF);
            Bias = AddParameter("bias", Init.Zeros, outF);
        }
    }

    sealed class Net : Module
    {
        public readonly ModuleList<Block> Layers;
        public readonly Block Head;
        public Net()
        {
            Layers = AddModule("layers", new ModuleList<Block>());
            Layers.Add(new Block(8, 16));
            Layers.Add(new Block(16, 16));
            Head = AddModule("head", new Block(16, 2));
        }
    }

    [Test]
    public void NamesFollowDeclarationOrderLikeAStateDict()
    {
        var names = new Net().NamedParameters().Select(p => p.Name);
        Assert.That(names, Is.EqualTo(new[] { "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "head.weight", "head.bias" }));
    }

    [Test]
    public void TrainableParametersComeFirstAndFrozenOnesHaveNoGradient()
    {
        using var backend = Backends.Create("cpu");
        var net = new Net();
        net.Layers[0].RequiresGrad(false);
        using var store = new ParameterStore(backend, net);
        Assert.That(store.Length, Is.EqualTo(net.ParameterCount()));
        Assert.That(store.TrainableLength, Is.EqualTo(16 * 16 + 16 + 2 * 16 + 2));
        Assert.That(store.Offsets[net.Layers[1].Weight], Is.EqualTo(0));
        Assert.That(store.Offsets[net.Layers[0].Weight], Is.EqualTo(store.TrainableLength));
        Assert.That(net.Layers[0].Weight.Value.Grad, Is.Null);
        Assert.That(net.Head.Weight.Value.Grad, Is.Not.Null);
    }

    [Test]
    public void FreezingAfterTheStoreExistsIsRefused()
    {
        using var backend = Backends.Create("cpu");
        var net = new Net();
        using var store = new ParameterStore(backend, net);
        Assert.That(() => net.Layers[0].RequiresGrad(false), Throws.InvalidOperationException.With.Message.Contains("parameter store"));
        Assert.That(net.Layers[0].Weight.Value.Grad, Is.Not.Null);
        net.Layers[0].RequiresGrad(true);                  // what the store was built with: nothing changes
    }

    [Test]
    public void InitializationFollowsEachInitAndIsTheSameOnEveryBackend()
    {
        float[] Init(string name)
        {
            using var backend = Backends.Create(name);
            var net = new Net();
            using var store = new ParameterStore(backend, net);
            store.Initialize(seed: 42);
            var w = net.Layers[0].Weight.Value.ToArray();
            Assert.That(w.Max(Math.Abs), Is.LessThanOrEqualTo(1 / Math.Sqrt(8)));
            Assert.That(w.Min(), Is.LessThan(-0.25f));                  // spans the bound ±0.354, not [0, 1)
            Assert.That(net.Layers[0].Bias.Value.ToArray(), Is.All.EqualTo(0f));
            return w;
        }
        // Uniform draws from Philox are bit-identical across tiers; the affine map may round differently.
        Close.Assert(Init("cpu"), Init("reference"), 1e-7, 1e-6, "initial weights");
    }

    [Test]
    public void GradientsLandInTheFlatBufferAndZeroGradClearsThem()
    {
        using var backend = Backends.Create("cpu");
        var net = new Net();
        using var store = new ParameterStore(backend, net);
        store.Initialize(1);
        using (var scope = new TensorScope())
        {
            var x = Tensor.RandomNormal(backend, 3, 0, 4, 8);
            var h = F.Linear(x, net.Layers[0].Weight.Value, net.Layers[0].Bias.Value);
            F.Sum(F.Linear(h, net.Layers[1].Weight.Value, net.Layers[1].Bias.Value)).Backward();
        }
        var grads = new float[store.TrainableLength];
        backend.Download<float>(grads, store.Grads);
        long biasAt = store.Offsets[net.Layers[1].Bias];
        Assert.That(grads.AsSpan((int)biasAt, 16).ToArray(), Is.All.EqualTo(4f));   // Σ over 4 rows of dL/dy = 1
        Assert.That(grads.AsSpan(store.Offsets[net.Head.Weight] is var o ? (int)o : 0, 32).ToArray(), Is.All.EqualTo(0f));
        store.ZeroGrad();
        backend.Download<float>(grads, store.Grads);
        Assert.That(grads, Is.All.EqualTo(0f));
    }
}

/// <summary>Tape.DetectAnomaly (train --detect_anomaly): the first op whose output, or whose incoming gradient, is not
/// finite stops the computation, named with its shape; off, the same computation runs through.</summary>
public class AnomalyDetectionTests
{
    static readonly IBackend Reference = Backends.Create("reference");

    [TearDown] public void Off() => Tape.DetectAnomaly = false;

    [Test]
    public void AForwardOverflowNamesTheOpAndItsShape()
    {
        using var scope = new TensorScope();
        var x = Tensor.FromArray(Reference, [1e30f, 2f], 2);
        x.RequiresGrad = true;
        var y = F.Mul(x, x);   // 1e60 overflows f32
        Assert.That(y.ToArray()[0], Is.EqualTo(float.PositiveInfinity), "without the check the overflow passes silently");
        Tape.DetectAnomaly = true;
        Assert.That(() => F.Mul(x, x), Throws.InstanceOf<ArithmeticException>().With.Message.EqualTo("anomaly: mul produced a non-finite value in its output f32[2]"));
    }

    [Test]
    public void ANonFiniteGradientNamesWhereItAppeared()
    {
        using var scope = new TensorScope();
        var x = Tensor.FromArray(Reference, [1f, 2f], 2);
        x.RequiresGrad = true;
        Tape.DetectAnomaly = true;
        var c = F.Scale(x, 1f);
        var loss = F.Sum(F.Scale(c, 1e20f));   // a finite forward; backward from a seed of 1e30 gives c a gradient of 1e50
        Assert.That(() => loss.Backward(1e30f), Throws.InstanceOf<ArithmeticException>()
            .With.Message.EqualTo("anomaly: the gradient of scale's output f32[2] is non-finite after the backward of scale"));
    }
}
