// LoRA adapters: the forward equals a merged weight, A and B pass finite differences, and the keys are peft's.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;
using DreamBooth.Models.UNet;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class LoraTests
{
    static readonly IBackend Reference = Backends.Create("reference");

    /// <summary>A linear layer's own model, so the adapter finds it under the path "proj".</summary>
    sealed class OneLayer : Module
    {
        public Linear Proj { get; }
        public OneLayer(int i, int o) => Proj = AddModule("proj", new Linear(i, o));
    }

    [Test]
    public void AnAdapterStartsAsTheIdentityUpdateAndItsForwardEqualsTheMergedWeight()
    {
        var model = new OneLayer(6, 5);
        model.RequiresGrad(false);
        using var store = ModelData.Initialized(Reference, model, seed: 1);
        var network = LoraNetwork.Attach(model, ["proj"], rank: 3, alpha: 6);
        using var lora = ModelData.Initialized(Reference, network, seed: 2);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var x = Tensor.RandomNormal(Reference, 3, 0, 1, 4, 6);
        var plain = F.Linear(x, model.Proj.Weight.Value, model.Proj.Bias!.Value).ToArray();
        Assert.That(model.Proj.Forward(x).ToArray(), Is.EqualTo(plain), "lora_B starts at zero");

        Reference.RandomNormal(network.Adapters[0].Adapter.Up.Weight.Value.Storage, 4, 0);   // a trained B
        Assert.That(network.Adapters[0].Adapter.Scale, Is.EqualTo(2f), "α / r");
        var adapted = model.Proj.Forward(x).ToArray();
        Assert.That(adapted, Is.Not.EqualTo(plain));
        network.Merge();
        Assert.That(model.Proj.Adapter, Is.Null);
        // One rounding of W + 2·B·A against the adapter's separate products: f32, sums of 6 and 3 terms of size ~1.
        Assert.That(model.Proj.Forward(x).ToArray(), Is.EqualTo(adapted).Within(1e-5f));
    }

    [Test]
    public void TheGradientsOfAAndBPassFiniteDifferencesAndTheFrozenWeightGetsNone()
    {
        var model = new OneLayer(5, 4);
        model.RequiresGrad(false);
        using var store = ModelData.Initialized(Reference, model, seed: 5);
        var network = LoraNetwork.Attach(model, ["proj"], rank: 2, alpha: 2);
        using var lora = ModelData.Initialized(Reference, network, seed: 6);
        Reference.RandomNormal(network.Adapters[0].Adapter.Up.Weight.Value.Storage, 7, 0);   // B ≠ 0, so A's gradient is not zero
        Assert.That(store.TrainableLength, Is.Zero);
        TensorGradCheck.Check(Reference, t => model.Proj.Forward(t[0]), [TensorGradCheck.Input(8, 1.0, 3, 5)], "lora linear", parameters: lora);
    }

    [Test]
    public void DropoutZeroesInputsInTrainingOnlyWithOneMaskPerStreamAndPassesFiniteDifferences()
    {
        var model = new OneLayer(64, 4);
        model.RequiresGrad(false);
        using var store = ModelData.Initialized(Reference, model, seed: 9);
        var network = LoraNetwork.Attach(model, ["proj"], rank: 2, alpha: 2, dropout: 0.25);
        using var lora = ModelData.Initialized(Reference, network, seed: 10);
        Reference.RandomNormal(network.Adapters[0].Adapter.Up.Weight.Value.Storage, 11, 0);
        using var scope = new TensorScope();
        var x = Tensor.RandomNormal(Reference, 12, 0, 8, 64);
        float[] Run((ulong, ulong)? stream)
        {
            network.SetDropoutStream(stream);
            using var noGrad = Tape.NoGrad();
            return model.Proj.Forward(x).ToArray();
        }
        var eval = Run(null);
        network.Detach();
        var plain = Run(null);
        Assert.That(eval, Is.Not.EqualTo(plain), "the adapter is on");
        model.Proj.Adapter = network.Adapters[0].Adapter;
        var first = Run((5, 0));
        Assert.That(Run((5, 0)), Is.EqualTo(first), "one stream, one mask (a checkpointed block's recompute)");
        Assert.That(Run((5, LoraAdapter.DropoutCounters)), Is.Not.EqualTo(first), "another step, another mask");
        Assert.That(first, Is.Not.EqualTo(eval));

        // The mask: inputs zeroed with probability p, the rest × 1/(1 − p). With A's first row all ones and B = e₀·e₀ᵀ, the
        // first output of each row is (α/r = 1) × 4/3 × the kept inputs: 512 draws, kept share within 4.6σ (45) of 384.
        var adapter = network.Adapters[0].Adapter;
        var (a, b) = (adapter.Down.Weight.Value.ToArray(), adapter.Up.Weight.Value.ToArray());
        Reference.Upload<float>(adapter.Down.Weight.Value.Storage, [.. Enumerable.Repeat(1f, 64), .. new float[64]]);
        Reference.Upload<float>(adapter.Up.Weight.Value.Storage, [1f, 0, 0, 0, 0, 0, 0, 0]);
        adapter.DropoutStream = (5, 0);
        float[] sums;
        using (Tape.NoGrad()) sums = adapter.Forward(Tensor.FromArray(Reference, Enumerable.Repeat(1f, 512).ToArray(), 8, 64)).ToArray();
        var kept = Enumerable.Range(0, 8).Select(r => sums[4 * r] * 0.75f).ToArray();
        Assert.That(kept, Has.All.Matches<float>(k => Math.Abs(k - MathF.Round(k)) < 1e-3f), "whole inputs kept, each × 4/3");
        Assert.That(kept.Sum(), Is.EqualTo(384).Within(45));
        Reference.Upload<float>(adapter.Down.Weight.Value.Storage, a);
        Reference.Upload<float>(adapter.Up.Weight.Value.Storage, b);

        adapter.DropoutStream = (5, 0);
        TensorGradCheck.Check(Reference, t => model.Proj.Forward(t[0]), [TensorGradCheck.Input(13, 1.0, 3, 64)], "lora linear with dropout",
            parameters: lora, samples: 8);
    }

    [Test]
    public void UnetAndTextEncoderTargetsAreDiffusersAndTheKeysArePefts()
    {
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json")));
        var network = LoraNetwork.Attach(unet, LoraNetwork.UnetTargets, rank: 4, alpha: 4);
        var keys = network.NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        int attentions = unet.NamedModules().Count(m => m.Module is Attention);
        Assert.That(network.Adapters, Has.Count.EqualTo(4 * attentions));
        Assert.That(keys, Has.Count.EqualTo(8 * attentions));
        var (path, q, _) = network.Adapters[0];
        Assert.That(path, Does.Match(@"^down_blocks\.\d\.attentions\.0\.transformer_blocks\.0\.attn1\.to_q$"));
        Assert.That(keys[path + ".lora_A.weight"], Is.EqualTo(new[] { 4, q.InFeatures }));
        Assert.That(keys[path + ".lora_B.weight"], Is.EqualTo(new[] { q.OutFeatures, 4 }));
        Assert.That(keys, Does.ContainKey("mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight"));
        Assert.That(keys.Keys, Has.None.Contains("proj_in").And.None.Contains("ff.net"));

        var clip = new ClipTextModel(ClipTextConfig.Load(ModelData.Path("tiny-sd", "text_encoder", "config.json")));
        var te = LoraNetwork.Attach(clip, LoraNetwork.TextEncoderTargets, rank: 2, alpha: 1);
        Assert.That(te.NamedParameters().Select(n => n.Name), Does.Contain("text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"));
        Assert.That(te.Adapters, Has.Count.EqualTo(4 * clip.Config.NumHiddenLayers));
        Assert.That(() => LoraNetwork.Attach(unet, LoraNetwork.UnetTargets, 4, 4), Throws.InvalidOperationException.With.Message.Contains("already has an adapter"));
        network.Detach();
        Assert.That(unet.NamedModules().Select(m => m.Module).OfType<Linear>().Where(l => l.Adapter is not null), Is.Empty);
        Assert.That(() => LoraNetwork.Attach(unet, ["no_such_layer"], 4, 4), Throws.ArgumentException.With.Message.Contains("no linear layer matches"));
    }
}
