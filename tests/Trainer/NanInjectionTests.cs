// NaN discipline of the one training loop: a NaN put into the loss, or into the gradients only, is a skipped step and a
// lower scale under fp16 loss scaling, and a clear stop in f32; the weights and AdamW's moments never hold NaN or Inf.
using System.Text.Json.Nodes;
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Tests.Autograd;
using DreamBooth.Tests.Models;
using DreamBooth.Trainer;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class NanInjectionTests
{
    /// <summary>A small regression through the loop's ITrainingTask: an MLP maps 8 fixed inputs (4) to targets (3). At the
    /// micro-steps in <paramref name="poisonLoss"/> the loss is multiplied by NaN; at those in <paramref name="poisonGrads"/>
    /// the loss stays finite and one gradient element is set to NaN before backward adds onto it.</summary>
    sealed class PoisonedTask : ITrainingTask
    {
        readonly IBackend _backend;
        readonly Mlp _net = new(4, 16, 3);
        readonly ISet<ulong> _poisonLoss, _poisonGrads;
        public readonly ParameterStore Store;

        public PoisonedTask(IBackend backend, ISet<ulong> poisonLoss, ISet<ulong> poisonGrads)
        {
            (_backend, _poisonLoss, _poisonGrads) = (backend, poisonLoss, poisonGrads);
            Store = new ParameterStore(backend, _net);
            Store.Initialize(7);
            Components = [TrainedComponent.Model("unet", Store, path => File.WriteAllText(path, "{}"))];
        }

        public int DatasetLength => 8;
        public IReadOnlyList<TrainedComponent> Components { get; }

        public DenoisingLoss Loss(int[] examples, StepNoise noise)
        {
            int n = examples.Length;
            var x = Tensor.FromArray(_backend, examples.SelectMany(e => Enumerable.Range(0, 4).Select(j => MathF.Sin(e + 0.7f * j))).ToArray(), n, 4);
            var y = Tensor.FromArray(_backend, examples.SelectMany(e => Enumerable.Range(0, 3).Select(j => MathF.Cos(0.5f * e - j))).ToArray(), n, 3);
            var loss = F.MseLoss(_net.Forward(x), y);
            if (_poisonLoss.Contains(noise.Step)) loss = F.Mul(loss, Tensor.FromArray(_backend, [float.NaN], 1));
            if (_poisonGrads.Contains(noise.Step)) _backend.Fill(Store.Grads.Slice(5, 1), float.NaN);
            return new DenoisingLoss(loss, loss, null);
        }

        public GeneratedImages? Validate() => null;
        public void SaveModel(string dir) => Checkpoints.SaveComponent(dir, Components[0]);
        public void Dispose() => Store.Dispose();
    }

    static TrainOptions Options(string output, string precision) => new()
    {
        Model = "unused", Concepts = [], OutputDir = output, MixedPrecision = precision, TrainBatchSize = 4, MaxTrainSteps = 8,
        LearningRate = 1e-2, CheckpointingSteps = 1, ValidationSteps = 1000, Seed = 5,
    };

    /// <summary>Every tensor of the file, in name order.</summary>
    static float[] Floats(string file)
    {
        using var f = SafetensorsFile.Open(file);
        return f.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal).SelectMany(t => f.ReadFloats(t.Name)).ToArray();
    }

    /// <summary>The store's weights now, in name order.</summary>
    static float[] Live(ParameterStore store) =>
        store.Named.OrderBy(p => p.Name, StringComparer.Ordinal).SelectMany(p => p.Parameter.Value.ToArray()).ToArray();

    static float[] Weights(string dir) => Floats(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"));

    [Test]
    public void UnderFp16ANaNInTheLossOrTheGradientsIsASkippedStepAndALowerScale()
    {
        string output = ModelData.TempFolder();
        using var backend = Backends.Create("cpu");
        using var task = new PoisonedTask(backend, poisonLoss: new HashSet<ulong> { 2 }, poisonGrads: new HashSet<ulong> { 5 });
        var error = new StringWriter();
        var old = Console.Error;
        Console.SetError(error);
        try { TrainingLoop.Run(task, LoopSettings.From(Options(output, "fp16"), task.DatasetLength, 5)); }
        finally { Console.SetError(old); }

        var log = File.ReadAllLines(Path.Combine(output, "logs", "train.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
        Assert.That(log.Where(l => (bool)l["skipped"]!).Select(l => (int)l["step"]!), Is.EqualTo(new[] { 3, 6 }),
            "micro-steps 2 and 5 are optimizer steps 3 and 6");
        Assert.That(log.Select(l => (double)l["loss_scale"]!), Is.EqualTo(new[] { 65536.0, 65536, 32768, 32768, 32768, 16384, 16384, 16384 }));
        Assert.That(error.ToString(), Does.Contain("step 3: the fp16 gradients hold Inf or NaN").And.Contain("loss scale now 32768")
            .And.Contain("step 6:").And.Contain("loss scale now 16384"));
        Assert.That(Live(task.Store), Has.All.Matches<float>(float.IsFinite));
        foreach (var (_, dir) in Checkpoints.List(output))
        {
            Assert.That(Weights(dir), Has.All.Matches<float>(float.IsFinite), dir);
            Assert.That(Floats(Path.Combine(dir, "optimizer.safetensors")), Has.All.Matches<float>(float.IsFinite), dir);
        }
        Assert.That(Weights(output), Is.EqualTo(Live(task.Store)), "the final model");
        Assert.That(Weights(Path.Combine(output, "checkpoint-3")), Is.EqualTo(Weights(Path.Combine(output, "checkpoint-2"))),
            "the skipped step changed no weight");
        Directory.Delete(output, true);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void InF32ANaNStopsTheRunWithTheStepAndLeavesTheCheckpointsFinite(bool gradientsOnly)
    {
        string output = ModelData.TempFolder();
        using var backend = Backends.Create("cpu");
        var poison = new HashSet<ulong> { 3 };
        using var task = new PoisonedTask(backend, gradientsOnly ? [] : poison, gradientsOnly ? poison : []);
        var e = Assert.Throws<InvalidOperationException>(() => TrainingLoop.Run(task, LoopSettings.From(Options(output, "no"), task.DatasetLength, 5)))!;
        Assert.That(e.Message, Does.StartWith("step 4: the gradient norm is NaN").And.Contain("resume from the last checkpoint"));
        Assert.That(Checkpoints.List(output).Select(c => c.Step), Is.EqualTo(new[] { 1, 2, 3 }), "the steps before it were saved");
        Assert.That(Weights(Path.Combine(output, "checkpoint-3")), Is.EqualTo(Live(task.Store)),
            "the NaN step was not applied");
        Assert.That(Live(task.Store), Has.All.Matches<float>(float.IsFinite));
        Assert.That(File.Exists(Path.Combine(output, "model_index.json")) || Directory.Exists(Path.Combine(output, "unet")), Is.False,
            "no final model is written from a stopped run");
        Directory.Delete(output, true);
    }
}
