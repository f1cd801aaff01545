// UNet2DConditionModel: the real SD 1.5 parameter count and keys, an SD 2.x variant, forward shapes, gradients, a training step, the SR wrapper.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;
using DreamBooth.Models.UNet;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class UNetTests
{
    static UNet2DConditionConfig Sd15 => UNet2DConditionConfig.Load(ModelData.Path("sd15", "unet", "config.json"));
    static UNet2DConditionConfig TinySd => UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json"));

    /// <summary>SD 2.x's UNet: SD 1.5's with linear projections, 64-wide heads (5, 10, 20, 20 of them) and OpenCLIP's 1024-wide context.</summary>
    static UNet2DConditionConfig Sd2 => Sd15 with { UseLinearProjection = true, AttentionHeadDim = [5, 10, 20, 20], CrossAttentionDim = 1024 };

    /// <summary>Two levels and every option the builder knows: class labels, only-cross-attention, centring, padding 0,
    /// a mid-block scale factor, shifted unflipped sinusoids.</summary>
    static UNet2DConditionConfig Small => new()
    {
        InChannels = 3, OutChannels = 2, BlockOutChannels = [8, 16], LayersPerBlock = 1,
        DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
        OnlyCrossAttention = [true, false], AttentionHeadDim = [2, 2], NormNumGroups = 4, CrossAttentionDim = 6,
        NumClassEmbeds = 3, CenterInputSample = true, DownsamplePadding = 0, MidBlockScaleFactor = 2, FreqShift = 1,
        FlipSinToCos = false,
    };

    static readonly IBackend Reference = Backends.Create("reference");

    [Test]
    public void Sd15HasTheParameterCountOfTheRealUnet()
    {
        var unet = new UNet2DConditionModel(Sd15);
        Assert.That(unet.ParameterCount(), Is.EqualTo(859_520_964));
        Assert.That(unet.NamedParameters().Count(), Is.EqualTo(686));   // tensors in the diffusers checkpoint
    }

    [Test]
    public void Sd15KeysAreTheCheckpointKeys()
    {
        var named = new UNet2DConditionModel(Sd15).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        const string t0 = "down_blocks.0.attentions.0.transformer_blocks.0.";
        var expected = new Dictionary<string, int[]>
        {
            ["conv_in.weight"] = [320, 4, 3, 3],
            ["time_embedding.linear_1.weight"] = [1280, 320],
            ["time_embedding.linear_2.bias"] = [1280],
            ["down_blocks.0.resnets.0.norm1.weight"] = [320],
            ["down_blocks.0.resnets.0.conv1.weight"] = [320, 320, 3, 3],
            ["down_blocks.0.resnets.0.time_emb_proj.weight"] = [320, 1280],
            ["down_blocks.0.resnets.1.norm2.bias"] = [320],
            ["down_blocks.0.resnets.1.conv2.bias"] = [320],
            ["down_blocks.0.attentions.0.norm.weight"] = [320],
            ["down_blocks.0.attentions.0.proj_in.weight"] = [320, 320, 1, 1],
            [t0 + "norm1.weight"] = [320],
            [t0 + "attn1.to_q.weight"] = [320, 320],
            [t0 + "attn1.to_k.weight"] = [320, 320],
            [t0 + "attn1.to_v.weight"] = [320, 320],
            [t0 + "attn1.to_out.0.weight"] = [320, 320],
            [t0 + "attn1.to_out.0.bias"] = [320],
            [t0 + "norm2.bias"] = [320],
            [t0 + "attn2.to_q.weight"] = [320, 320],
            [t0 + "attn2.to_k.weight"] = [320, 768],
            [t0 + "attn2.to_v.weight"] = [320, 768],
            [t0 + "norm3.weight"] = [320],
            [t0 + "ff.net.0.proj.weight"] = [2560, 320],
            [t0 + "ff.net.0.proj.bias"] = [2560],
            [t0 + "ff.net.2.weight"] = [320, 1280],
            ["down_blocks.0.attentions.1.proj_out.weight"] = [320, 320, 1, 1],
            ["down_blocks.0.downsamplers.0.conv.weight"] = [320, 320, 3, 3],
            ["down_blocks.1.resnets.0.conv_shortcut.weight"] = [640, 320, 1, 1],
            ["down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight"] = [1280, 768],
            ["down_blocks.3.resnets.1.conv2.weight"] = [1280, 1280, 3, 3],
            ["mid_block.resnets.0.conv1.weight"] = [1280, 1280, 3, 3],
            ["mid_block.attentions.0.proj_out.weight"] = [1280, 1280, 1, 1],
            ["mid_block.resnets.1.norm2.bias"] = [1280],
            ["up_blocks.0.resnets.0.conv1.weight"] = [1280, 2560, 3, 3],
            ["up_blocks.0.resnets.2.conv_shortcut.weight"] = [1280, 2560, 1, 1],
            ["up_blocks.0.upsamplers.0.conv.weight"] = [1280, 1280, 3, 3],
            ["up_blocks.1.resnets.2.conv1.weight"] = [1280, 1920, 3, 3],
            ["up_blocks.1.attentions.2.transformer_blocks.0.ff.net.2.bias"] = [1280],
            ["up_blocks.2.resnets.0.conv_shortcut.weight"] = [640, 1920, 1, 1],
            ["up_blocks.3.resnets.0.conv1.weight"] = [320, 960, 3, 3],
            ["up_blocks.3.resnets.2.conv_shortcut.weight"] = [320, 640, 1, 1],
            ["up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v.weight"] = [320, 768],
            ["conv_norm_out.weight"] = [320],
            ["conv_out.weight"] = [4, 320, 3, 3],
            ["conv_out.bias"] = [4],
        };
        foreach (var (key, shape) in expected)
        {
            Assert.That(named, Does.ContainKey(key));
            Assert.That(named[key], Is.EqualTo(shape), key);
        }
        Assert.That(named.Keys, Has.None.StartsWith("down_blocks.3.downsamplers"));   // the last down block keeps its size
        Assert.That(named.Keys, Has.None.StartsWith("down_blocks.3.attentions"));     // DownBlock2D
        Assert.That(named.Keys, Has.None.StartsWith("up_blocks.0.attentions"));       // UpBlock2D
        Assert.That(named.Keys, Has.None.StartsWith("up_blocks.3.upsamplers"));
        Assert.That(named.Keys, Has.None.StartsWith("class_embedding"));
        Assert.That(named.Keys, Has.None.Contains("to_q.bias").Or.Contains("to_k.bias").Or.Contains("to_v.bias"));
        Assert.That(named.Keys, Has.None.Contains("down_blocks.0.resnets.0.conv_shortcut"));   // 320 → 320
    }

    [Test]
    public void KeysAreUnique() => Assert.That(new UNet2DConditionModel(Sd15).NamedParameters().Select(n => n.Name), Is.Unique);

    [Test]
    public void AttentionHeadDimCountsHeads()
    {
        // diffusers' naming quirk: attention_head_dim 8 means 8 heads of 320/8 = 40, 640/8 = 80, 1280/8 = 160 values
        var sd15 = new UNet2DConditionModel(Sd15);
        var sd2 = new UNet2DConditionModel(Sd2);
        Attention Attn1(UNet2DConditionModel m, int block) =>
            ((CrossAttnDownBlock2D)m.DownBlocks[block]).Attentions[0].TransformerBlocks[0].Attn1;
        Assert.That(Attn1(sd15, 0).Heads, Is.EqualTo(8));
        Assert.That(Attn1(sd15, 2).Heads, Is.EqualTo(8));
        Assert.That(Attn1(sd2, 0).Heads, Is.EqualTo(5));
        Assert.That(Attn1(sd2, 1).Heads, Is.EqualTo(10));
        Assert.That(sd2.MidBlock.Attentions[0].TransformerBlocks[0].Attn2.Heads, Is.EqualTo(20));
    }

    [Test]
    public void Sd2VariantUsesLinearProjectionsAndTheWiderContext()
    {
        var unet = new UNet2DConditionModel(Sd2);
        Assert.That(unet.ParameterCount(), Is.EqualTo(865_910_724));   // diffusers' count for SD 2.x's UNet
        var named = unet.NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named["down_blocks.0.attentions.0.proj_in.weight"], Is.EqualTo(new[] { 320, 320 }));
        Assert.That(named["mid_block.attentions.0.proj_out.weight"], Is.EqualTo(new[] { 1280, 1280 }));
        Assert.That(named["up_blocks.3.attentions.0.transformer_blocks.0.attn2.to_k.weight"], Is.EqualTo(new[] { 320, 1024 }));
        Assert.That(named.Keys, Is.EquivalentTo(new UNet2DConditionModel(Sd15).NamedParameters().Select(n => n.Name)));
    }

    [Test]
    public void ClassEmbeddingAndOnlyCrossAttentionChangeTheKeysAsInDiffusers()
    {
        var named = new UNet2DConditionModel(Small).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named["class_embedding.weight"], Is.EqualTo(new[] { 3, 32 }));
        Assert.That(named["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight"], Is.EqualTo(new[] { 8, 6 }));   // cross
        Assert.That(named["up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight"], Is.EqualTo(new[] { 8, 6 }));     // reversed list
        Assert.That(named["mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight"], Is.EqualTo(new[] { 16, 16 }));    // always self
    }

    [Test]
    public void TimestepClassEmbeddingIsAnMlpUnderDiffusersKeys()
    {
        // diffusers: class_embed_type "timestep" → TimestepEmbedding(block_out_channels[0], 4·block_out_channels[0]), fed
        // the labels' sinusoid from the same time_proj; num_class_embeds is then unused.
        var named = new UNet2DConditionModel(Small with { ClassEmbedType = "timestep" }).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named["class_embedding.linear_1.weight"], Is.EqualTo(new[] { 32, 8 }));
        Assert.That(named["class_embedding.linear_2.weight"], Is.EqualTo(new[] { 32, 32 }));
        Assert.That(named.Keys, Has.None.EqualTo("class_embedding.weight"));
        Assert.That((Small with { ClassEmbedType = "timestep", NumClassEmbeds = null }).EmbedsClassLabels, Is.True);
        Assert.That((Small with { NumClassEmbeds = null }).EmbedsClassLabels, Is.False);
    }

    [Test]
    public void TinySdForwardKeepsTheSampleShapeOnCpu()
    {
        using var backend = Backends.Create("cpu");
        var unet = new UNet2DConditionModel(TinySd);
        using var store = ModelData.Initialized(backend, unet, seed: 1);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var y = unet.Forward(Tensor.RandomNormal(backend, 2, 0, 2, 4, 16, 16), [10f, 900f], Tensor.RandomNormal(backend, 3, 0, 2, 77, 32));
        Assert.That(y.Shape.ToArray(), Is.EqualTo(new[] { 2, 4, 16, 16 }));
        Assert.That(y.ToArray(), Has.All.Matches<float>(float.IsFinite));
    }

    [Test]
    public void CpuAgreesWithTheReferenceOnTinySd()
    {
        float[] Run(IBackend backend)
        {
            var unet = new UNet2DConditionModel(TinySd);
            using var store = ModelData.Initialized(backend, unet, seed: 4);
            using var scope = new TensorScope();
            using var noGrad = Tape.NoGrad();
            return unet.Forward(Tensor.RandomNormal(backend, 5, 0, 1, 4, 8, 8), [321f], Tensor.RandomNormal(backend, 6, 0, 1, 7, 32)).ToArray();
        }
        using var cpu = Backends.Create("cpu");
        // f32 SIMD sums in another order than the reference's double ones, through ~20 layers: about 1e-6 relative
        const double tol = 1e-4;
        Close.Assert(Run(cpu), Run(Reference), tol, tol, "tiny-sd unet cpu vs reference");
    }

    [Test]
    public void WithoutTheTapeAForwardFreesEverythingButItsOutput()
    {
        using var backend = Backends.Create("cpu");
        var unet = new UNet2DConditionModel(TinySd);
        using var store = ModelData.Initialized(backend, unet, seed: 2);
        using var scope = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 2, 4, 32, 32);
        var ctx = Tensor.RandomNormal(backend, 2, 0, 2, 77, 32);
        long before = backend.Memory.CurrentBytes;
        backend.Memory.ResetPeak();
        using (Tape.NoGrad())
        {
            var y = unet.Forward(x, [1f, 2f], ctx);
            Assert.That(backend.Memory.CurrentBytes - before, Is.EqualTo(y.Length * sizeof(float)));
        }
        long inference = backend.Memory.PeakBytes - before;
        x.RequiresGrad = true;                                   // the same forward on the tape keeps every activation
        unet.Forward(x, [1f, 2f], ctx);
        long recorded = backend.Memory.PeakBytes - before;
        Assert.That(inference, Is.LessThan(recorded / 4), $"peak {inference} bytes without the tape, {recorded} with it");
    }

    [Test]
    public void ForwardRejectsInputsThatDoNotFit()
    {
        var unet = new UNet2DConditionModel(Small);
        using var store = new ParameterStore(Reference, unet);
        using var scope = new TensorScope();
        var x = Tensor.Zeros(Reference, 1, 3, 4, 4);
        var ctx = Tensor.Zeros(Reference, 1, 2, 6);
        Assert.That(() => unet.Forward(x, [1f], ctx), Throws.ArgumentException.With.Message.Contains("class labels"));
        Assert.That(() => unet.Forward(x, [1f], ctx, [3]), Throws.ArgumentException.With.Message.Contains("outside [0, 3)"));
        Assert.That(() => unet.Forward(x, [1f, 2f], ctx, [0]), Throws.ArgumentException.With.Message.Contains("2 timesteps"));
        Assert.That(() => unet.Forward(Tensor.Zeros(Reference, 1, 3, 5, 4), [1f], ctx, [0]), Throws.ArgumentException.With.Message.Contains("multiples of 2"));
        Assert.That(() => unet.Forward(x, [1f], Tensor.Zeros(Reference, 1, 2, 5), [0]), Throws.ArgumentException.With.Message.Contains("encoder_hidden_states"));
    }

    [Test]
    public void TextTimeEmbeddingHasTheDiffusersKeysAndRoundTripsItsConfig()
    {
        var config = Small with { AdditionEmbedType = "text", AdditionEmbedTypeNumHeads = 2 };
        var named = new UNet2DConditionModel(config).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named["add_embedding.norm1.weight"], Is.EqualTo(new[] { 6 }));
        Assert.That(named["add_embedding.pool.positional_embedding"], Is.EqualTo(new[] { 1, 6 }));
        Assert.That(named["add_embedding.pool.k_proj.weight"], Is.EqualTo(new[] { 6, 6 }));
        Assert.That(named["add_embedding.pool.q_proj.bias"], Is.EqualTo(new[] { 6 }));
        Assert.That(named["add_embedding.proj.weight"], Is.EqualTo(new[] { 32, 6 }));   // to the time embedding, 4 × 8
        Assert.That(named["add_embedding.norm2.bias"], Is.EqualTo(new[] { 32 }));
        Assert.That(named.Keys.Count(k => k.StartsWith("add_embedding.")), Is.EqualTo(13));   // 2 + (1 + 6) + 2 + 2

        string dir = ModelData.TempFolder();
        try
        {
            string path = Path.Combine(dir, "config.json");
            config.Save(path);
            var loaded = UNet2DConditionConfig.Load(path);
            Assert.That((loaded.AdditionEmbedType, loaded.AdditionEmbedTypeNumHeads), Is.EqualTo(("text", 2)));
            File.WriteAllText(path, File.ReadAllText(path).Replace("\"text\"", "\"image\""));
            Assert.That(() => UNet2DConditionConfig.Load(path), Throws.InstanceOf<InvalidDataException>()
                .With.Message.Contains("addition_embed_type").And.Message.Contains("\"image\""));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>AttentionPooling against its definition computed here in double: the class token mean(x) + pos attends
    /// over [class token; x] per head with scores scaled by 1/√(D/heads); tolerance: f32 on the reference tier, 1e-5.</summary>
    [Test]
    public void AttentionPoolingMatchesItsDefinition()
    {
        const int N = 2, L = 3, D = 4, Heads = 2, Dh = D / Heads;
        var pool = new AttentionPooling(Heads, D);
        using var store = ModelData.Initialized(Reference, pool, seed: 4);
        using var scope = new TensorScope();
        var xs = TestData.ToFloat(TestData.Uniform(8, N * L * D));
        var y = pool.Forward(Tensor.FromArray(Reference, xs, N, L, D)).ToArray();
        double[] W(Parameter p) => Array.ConvertAll(p.Value.ToArray(), v => (double)v);
        double[] Project(Linear lin, double[] v) => Enumerable.Range(0, D)
            .Select(o => W(lin.Bias!)[o] + Enumerable.Range(0, D).Sum(i => W(lin.Weight)[o * D + i] * v[i])).ToArray();
        for (int n = 0; n < N; n++)
        {
            var rows = Enumerable.Range(0, L).Select(l => Enumerable.Range(0, D).Select(d => (double)xs[(n * L + l) * D + d]).ToArray()).ToList();
            var cls = Enumerable.Range(0, D).Select(d => rows.Average(r => r[d]) + W(pool.PositionalEmbedding)[d]).ToArray();
            rows.Insert(0, cls);
            var q = Project(pool.QProj, cls);
            var k = rows.Select(r => Project(pool.KProj, r)).ToList();
            var v = rows.Select(r => Project(pool.VProj, r)).ToList();
            for (int h = 0; h < Heads; h++)
            {
                var scores = k.Select(kr => Enumerable.Range(h * Dh, Dh).Sum(d => q[d] * kr[d]) / Math.Sqrt(Dh)).ToArray();
                double max = scores.Max(), total = scores.Sum(sc => Math.Exp(sc - max));
                for (int d = h * Dh; d < (h + 1) * Dh; d++)
                    Assert.That(y[n * D + d], Is.EqualTo(Enumerable.Range(0, L + 1).Sum(j => Math.Exp(scores[j] - max) / total * v[j][d])).Within(1e-5),
                        $"sample {n}, channel {d}");
            }
        }
    }

    [Test]
    public void ConfigsOutsideTheSupportedSubsetAreRejected()
    {
        Assert.That(() => new UNet2DConditionModel(Small with { ResnetTimeScaleShift = "scale_shift" }),
            Throws.ArgumentException.With.Message.Contains("resnet_time_scale_shift \"scale_shift\""));
        Assert.That(() => new UNet2DConditionModel(Small with { ClassEmbedType = "projection" }),
            Throws.ArgumentException.With.Message.Contains("class_embed_type \"projection\""));
        Assert.That(() => new UNet2DConditionModel(Small with { AttentionHeadDim = [2] }),
            Throws.ArgumentException.With.Message.Contains("1 head counts"));
        Assert.That(() => new UNet2DConditionModel(Small with { AttentionHeadDim = [3, 2] }),
            Throws.ArgumentException.With.Message.Contains("8 channels do not split into 3 attention heads"));
    }

    // ---- gradients (finite differences on the reference backend) ----

    /// <summary>Builds <paramref name="module"/>'s store on the reference backend, initialised, with only the parameters
    /// named in <paramref name="trainable"/> (all when null) requiring gradients.</summary>
    static ParameterStore Store(Module module, ulong seed, params string[]? trainable)
    {
        if (trainable is { Length: > 0 })
            foreach (var (name, p) in module.NamedParameters()) p.RequiresGrad = trainable.Contains(name);
        return ModelData.Initialized(Reference, module, seed);
    }

    [Test]
    public void ResnetBlockGradients()
    {
        var block = new ResnetBlock2D(4, 6, 5, groups: 2, eps: 1e-5f, outputScaleFactor: 1.5f);
        using var store = Store(block, 3);
        TensorGradCheck.Check(Reference, t => block.Forward(t[0], t[1]),
            [TensorGradCheck.Input(1, 1.0, 2, 4, 3, 3), TensorGradCheck.Input(2, 1.0, 2, 5)], "resnet block",
            samples: 6, parameters: store);
    }

    [Test]
    public void AResnetBlockTakesATimeEmbeddingExactlyWhenItHasTimeEmbProj()
    {
        var withTemb = new ResnetBlock2D(4, 4, 5, groups: 2, eps: 1e-5f);
        var without = new ResnetBlock2D(4, 4, tembChannels: null, groups: 2, eps: 1e-5f);   // the VAE's
        Assert.That(without.NamedParameters().Select(n => n.Name), Has.None.StartsWith("time_emb_proj"));
        using var scope = new TensorScope();
        var x = Tensor.Zeros(Reference, 1, 4, 2, 2);
        Assert.That(() => withTemb.Forward(x), Throws.ArgumentException.With.Message.Contains("no time embedding"));
        Assert.That(() => without.Forward(x, Tensor.Zeros(Reference, 1, 5)),
            Throws.ArgumentException.With.Message.Contains("without time_emb_proj"));
    }

    [Test]
    public void TransformerBlockGradients()
    {
        var block = new BasicTransformerBlock(dim: 8, heads: 2, headDim: 4, contextDim: 6, onlyCrossAttention: false);
        using var store = Store(block, 5);
        TensorGradCheck.Check(Reference, t => block.Forward(t[0], t[1]),
            [TensorGradCheck.Input(1, 1.0, 2, 5, 8), TensorGradCheck.Input(2, 1.0, 2, 3, 6)], "basic transformer block",
            samples: 6, parameters: store);
    }

    [Test]
    public void Transformer2DGradients([Values] bool useLinearProjection)
    {
        var model = new Transformer2DModel(8, heads: 2, contextDim: 6, groups: 2, useLinearProjection, onlyCrossAttention: true);
        using var store = Store(model, 7, "norm.weight", "proj_in.weight", "transformer_blocks.0.attn1.to_k.weight", "proj_out.bias");
        TensorGradCheck.Check(Reference, t => model.Forward(t[0], t[1]),
            [TensorGradCheck.Input(1, 1.0, 1, 8, 2, 3), TensorGradCheck.Input(2, 1.0, 1, 3, 6)], "transformer 2d",
            samples: 8, parameters: store);
    }

    [Test]
    public void WholeUNetGradients()
    {
        var unet = new UNet2DConditionModel(Small);
        using var store = Store(unet, 9, "conv_in.weight", "class_embedding.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.weight", "up_blocks.0.resnets.1.time_emb_proj.bias");
        TensorGradCheck.Check(Reference, t => unet.Forward(t[0], [37f, 500f], t[1], [2, 0]),
            [TensorGradCheck.Input(1, 1.0, 2, 3, 4, 4), TensorGradCheck.Input(2, 1.0, 2, 3, 6)], "small unet",
            samples: 5, parameters: store);
    }

    [Test]
    public void WholeUNetGradientsWithTimestepClassEmbedding()
    {
        var unet = new UNet2DConditionModel(Small with { ClassEmbedType = "timestep" });
        using var store = Store(unet, 11, "class_embedding.linear_1.weight", "class_embedding.linear_2.bias", "conv_in.weight");
        TensorGradCheck.Check(Reference, t => unet.Forward(t[0], [37f, 500f], t[1], [250, 3]),
            [TensorGradCheck.Input(1, 1.0, 2, 3, 4, 4), TensorGradCheck.Input(2, 1.0, 2, 3, 6)], "small unet with a timestep class embedding",
            samples: 5, parameters: store);
    }

    [Test]
    public void WholeUNetGradientsWithPooledTextConditioning()
    {
        var unet = new UNet2DConditionModel(Small with { AdditionEmbedType = "text", AdditionEmbedTypeNumHeads = 2 });
        using var store = Store(unet, 10, "add_embedding.norm1.weight", "add_embedding.pool.positional_embedding", "add_embedding.pool.q_proj.weight",
            "add_embedding.pool.v_proj.bias", "add_embedding.proj.weight", "add_embedding.norm2.bias");
        TensorGradCheck.Check(Reference, t => unet.Forward(t[0], [37f, 500f], t[1], [2, 0]),
            [TensorGradCheck.Input(1, 1.0, 2, 3, 4, 4), TensorGradCheck.Input(2, 1.0, 2, 3, 6)], "small unet with add_embedding",
            samples: 5, parameters: store);
    }

    [Test]
    public void TrainingStepsReduceTheLossOnAFixedBatch()
    {
        using var backend = Backends.Create("cpu");
        var unet = new UNet2DConditionModel(Small);
        using var store = ModelData.Initialized(backend, unet, seed: 11);
        using var batch = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 2, 3, 8, 8);
        var ctx = Tensor.RandomNormal(backend, 2, 0, 2, 5, 6);
        var target = Tensor.RandomNormal(backend, 3, 0, 2, 2, 8, 8);
        const float lr = 0.05f;
        var losses = new List<float>();
        for (int step = 0; step < 15; step++)
        {
            using var scope = new TensorScope();
            store.ZeroGrad();
            var loss = F.MseLoss(unet.Forward(x, [100f, 700f], ctx, [1, 2]), target);
            losses.Add(loss.Item());
            loss.Backward();
            backend.Axpy(store.TrainableValues, store.Grads, -lr, store.TrainableLength);   // plain SGD
        }
        Assert.That(losses, Has.All.Matches<float>(float.IsFinite));
        Assert.That(losses[^1], Is.LessThan(0.9 * losses[0]), string.Join(", ", losses));
    }

    // ---- super-resolution ----

    static UNet2DConditionConfig SuperResolution => Small with { InChannels = 6, OutChannels = 3, NumClassEmbeds = 10, CenterInputSample = false };

    [Test]
    public void SuperResolutionForwardTakesTheLowResImageAndNoiseLevel()
    {
        using var backend = Backends.Create("cpu");
        var sr = new SuperResolutionUNet(new UNet2DConditionModel(SuperResolution));
        using var store = ModelData.Initialized(backend, sr.Unet, seed: 13);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var noisy = Tensor.RandomNormal(backend, 1, 0, 2, 3, 8, 8);
        var low = Tensor.RandomNormal(backend, 2, 0, 2, 3, 2, 2);
        var ctx = Tensor.RandomNormal(backend, 3, 0, 2, 4, 6);
        var y = sr.Forward(noisy, low, [5f, 50f], ctx, [0, 7]);
        Assert.That(y.Shape.ToArray(), Is.EqualTo(new[] { 2, 3, 8, 8 }));
        var other = sr.Forward(noisy, low, [5f, 50f], ctx, [9, 7]).ToArray();   // another noise level for sample 0 only
        var yv = y.ToArray();
        Assert.That(yv.AsSpan(0, 192).SequenceEqual(other.AsSpan(0, 192)), Is.False);
        Assert.That(yv.AsSpan(192).SequenceEqual(other.AsSpan(192)), Is.True);
        Assert.That(() => sr.Forward(noisy, Tensor.RandomNormal(backend, 2, 0, 2, 3, 3, 3), [5f, 50f], ctx, [0, 7]),
            Throws.ArgumentException.With.Message.Contains("power of 2"));
    }

    [Test]
    public void SuperResolutionWithATimestepNoiseEmbeddingTakesAnyLevelAndNearLevelsActAlike()
    {
        using var backend = Backends.Create("cpu");
        var sr = new SuperResolutionUNet(new UNet2DConditionModel(SuperResolution with { NumClassEmbeds = null, ClassEmbedType = "timestep" }));
        using var store = ModelData.Initialized(backend, sr.Unet, seed: 14);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var noisy = Tensor.RandomNormal(backend, 1, 0, 1, 3, 8, 8);
        var low = Tensor.RandomNormal(backend, 2, 0, 1, 3, 2, 2);
        var ctx = Tensor.RandomNormal(backend, 3, 0, 1, 4, 6);
        float[] At(int level) => sr.Forward(noisy, low, [500f], ctx, [level]).ToArray();
        double Distance(float[] a, float[] b) => Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Sum());
        var (l0, l1, l300, l999) = (At(0), At(1), At(300), At(999));   // 999: beyond any table of 10 rows
        Assert.That(Distance(l0, l300), Is.GreaterThan(0));
        // A smooth function of the level: neighbours are nearer than far levels, which a table of random rows does not give.
        Assert.That(Distance(l0, l1), Is.LessThan(Distance(l0, l300)));
        Assert.That(l999, Has.All.Matches<float>(float.IsFinite));
        Assert.That(() => sr.Forward(noisy, low, [500f], ctx, [-1]), Throws.ArgumentException.With.Message.Contains("class label -1"));
    }

    [Test]
    public void SuperResolutionNeedsLowResChannelsAndNoiseClasses()
    {
        Assert.That(() => new SuperResolutionUNet(new UNet2DConditionModel(Small with { InChannels = 2 })), Throws.ArgumentException.With.Message.Contains("in_channels"));
        Assert.That(() => new SuperResolutionUNet(new UNet2DConditionModel(SuperResolution with { NumClassEmbeds = null })), Throws.ArgumentException.With.Message.Contains("num_class_embeds or class_embed_type"));
    }
}
