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
