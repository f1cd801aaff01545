// CLIP text encoder: the real SD 1.5 parameter count, keys and init, tiny forward shapes, causality, cpu vs reference, gradients.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class ClipTextModelTests
{
    static ClipTextConfig Sd15 => ClipTextConfig.Load(ModelData.Path("sd15", "text_encoder", "config.json"));
    static ClipTextConfig Tiny => ClipTextConfig.Load(ModelData.Path("tiny-sd", "text_encoder", "config.json"));

    /// <summary>Two prompts of 77 ids: BOS, some words, EOS padding (the tokenizer's layout).</summary>
    static int[] Ids(params int[] words)
    {
        var ids = new int[2 * 77];
        Array.Fill(ids, 49407);
        for (int b = 0; b < 2; b++)
        {
            ids[b * 77] = 49406;
            for (int i = 0; i < words.Length; i++) ids[b * 77 + 1 + i] = words[i] + 100 * b;
        }
        return ids;
    }

    [Test]
    public void Sd15HasTheParameterCountOfTheRealTextEncoder() =>
        Assert.That(new ClipTextModel(Sd15).ParameterCount(), Is.EqualTo(123_060_480));

    [Test]
    public void Sd15KeysAreTheCheckpointKeys()
    {
        var named = new ClipTextModel(Sd15).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named, Has.Count.EqualTo(2 + 12 * 16 + 2));          // embeddings, 12 × 16 per layer, final norm
        Assert.That(named["text_model.embeddings.token_embedding.weight"], Is.EqualTo(new[] { 49408, 768 }));
        Assert.That(named["text_model.embeddings.position_embedding.weight"], Is.EqualTo(new[] { 77, 768 }));
        Assert.That(named["text_model.encoder.layers.0.self_attn.q_proj.weight"], Is.EqualTo(new[] { 768, 768 }));
        Assert.That(named["text_model.encoder.layers.11.self_attn.out_proj.bias"], Is.EqualTo(new[] { 768 }));
        Assert.That(named["text_model.encoder.layers.5.layer_norm1.weight"], Is.EqualTo(new[] { 768 }));
        Assert.That(named["text_model.encoder.layers.5.layer_norm2.bias"], Is.EqualTo(new[] { 768 }));
        Assert.That(named["text_model.encoder.layers.3.mlp.fc1.weight"], Is.EqualTo(new[] { 3072, 768 }));
        Assert.That(named["text_model.encoder.layers.3.mlp.fc2.weight"], Is.EqualTo(new[] { 768, 3072 }));
        Assert.That(named["text_model.final_layer_norm.weight"], Is.EqualTo(new[] { 768 }));
        Assert.That(ClipTextModel.BufferKeys, Does.Contain("text_model.embeddings.position_ids"));
        Assert.That(named.Keys, Has.None.Matches<string>(ClipTextModel.BufferKeys.Contains));
    }

    [Test]
    public void Sd15InitFollowsTransformersInitWeights()
    {
        var m = new ClipTextModel(Sd15).TextModel;
        var layer = m.Encoder.Layers[0];
        double inStd = Math.Pow(768, -0.5) * Math.Pow(2 * 12, -0.5), outStd = Math.Pow(768, -0.5), fcStd = Math.Pow(2 * 768, -0.5);
        Assert.That(m.Embeddings.TokenEmbedding.Weight.Init, Is.EqualTo(new Init.Normal(0.02)));
        Assert.That(m.Embeddings.PositionEmbedding.Weight.Init, Is.EqualTo(new Init.Normal(0.02)));
        Assert.That(layer.SelfAttn.QProj.Weight.Init, Is.EqualTo(new Init.Normal(inStd)));
        Assert.That(layer.SelfAttn.KProj.Weight.Init, Is.EqualTo(new Init.Normal(inStd)));
        Assert.That(layer.SelfAttn.VProj.Weight.Init, Is.EqualTo(new Init.Normal(inStd)));
        Assert.That(layer.SelfAttn.OutProj.Weight.Init, Is.EqualTo(new Init.Normal(outStd)));
        Assert.That(layer.Mlp.Fc1.Weight.Init, Is.EqualTo(new Init.Normal(fcStd)));
        Assert.That(layer.Mlp.Fc2.Weight.Init, Is.EqualTo(new Init.Normal(inStd)));
        Assert.That(layer.SelfAttn.QProj.Bias!.Init, Is.EqualTo(Init.Zeros));
        Assert.That(layer.Mlp.Fc1.Bias!.Init, Is.EqualTo(Init.Zeros));
        Assert.That((layer.LayerNorm1.Weight.Init, layer.LayerNorm1.Bias.Init), Is.EqualTo((Init.Ones, Init.Zeros)));
        Assert.That((m.FinalLayerNorm.Weight.Init, m.FinalLayerNorm.Bias.Init), Is.EqualTo((Init.Ones, Init.Zeros)));
    }

    [Test]
    public void ACheckpointWithThePositionIdsBufferLoads()
    {
        // transformers saves embeddings.position_ids (i64, (1, 77)) beside the parameters; the loader skips it.
        string dir = ModelData.TempFolder(), path = Path.Combine(dir, "model.safetensors");
        try
        {
            using var backend = Backends.Create("cpu");
            var source = new ClipTextModel(Tiny);
            using var saved = ModelData.Initialized(backend, source, seed: 13);
            var positionIds = Enumerable.Range(0, 77).SelectMany(i => BitConverter.GetBytes((long)i)).ToArray();
            SafetensorsWriter.Write(path, saved.Named
                .Select(n => SafetensorsEntry.FromFloats(n.Name, n.Parameter.Shape.Select(d => (long)d).ToArray(), n.Parameter.Value.ToArray()))
                .Append(SafetensorsEntry.FromBytes("text_model.embeddings.position_ids", SafetensorsDType.I64, [1, 77], positionIds))
                .ToList());

            var loaded = new ClipTextModel(Tiny);
            using var store = new ParameterStore(backend, loaded);
            Assert.That(() => StateDict.Load(store, path), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("position_ids"));
            StateDict.Load(store, path, ignore: ClipTextModel.BufferKeys);
            foreach (var (name, p) in store.Named)
                Assert.That(p.Value.ToArray(), Is.EqualTo(saved[name].Value.ToArray()), name);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Test]
    public void NamesAreUnique()
    {
        var names = new ClipTextModel(Sd15).NamedParameters().Select(n => n.Name).ToList();
        Assert.That(names, Is.Unique);
    }

    static float[] TinyForward(string backendName, int[] ids)
    {
        using var backend = Backends.Create(backendName);
        var model = new ClipTextModel(Tiny);
        using var store = ModelData.Initialized(backend, model, seed: 7);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var hidden = model.Forward(Tensor.FromInts(backend, ids, 2, 77));
        Assert.That(hidden.Shape.ToArray(), Is.EqualTo(new[] { 2, 77, 32 }));
        return hidden.ToArray();
    }

    [Test]
    public void TinyForwardGivesTheLastHiddenStateOfEveryToken()
    {
        var hidden = TinyForward("cpu", Ids(320, 1125, 539));
        Assert.That(hidden, Is.All.Not.NaN);
        // after the final layer norm (weight 1, bias 0 at init) each token's features have mean 0 and variance ≈ 1
        for (int row = 0; row < 2 * 77; row += 37)
        {
            var features = hidden.AsSpan(row * 32, 32).ToArray();
            Assert.That(features.Average(), Is.EqualTo(0).Within(1e-4));
            Assert.That(features.Average(v => v * v), Is.EqualTo(1).Within(1e-2));
        }
    }

    /// <summary>Rows chosen so the two rules part: two 49407s (argmax takes the first maximum, as torch does), a row without
    /// eos_token_id, and an id above 49407 (an added token). eos_token_id 2 (SD 1.x) pools at the argmax, any other at the
    /// first eos_token_id (0 when there is none).</summary>
    [TestCase(2, new[] { 1, 0, 5 })]
    [TestCase(49407, new[] { 1, 0, 2 })]
    public void PoolerOutputFollowsTransformersRule(int eosTokenId, int[] expected)
    {
        using var backend = Backends.Create("cpu");
        var model = new ClipTextModel(Tiny with { EosTokenId = eosTokenId });
        int[] ids = [49406, 49407, 7, 49407, 1, 1, /**/ 49406, 9, 8, 7, 6, 5, /**/ 49406, 5, 49407, 9, 1, 49408];
        using var scope = new TensorScope();
        var hidden = Tensor.FromArray(backend, Enumerable.Range(0, 3 * 6 * 2).Select(i => (float)i).ToArray(), 3, 6, 2);
        var pooled = model.Pool(hidden, ids).ToArray();
        for (int r = 0; r < 3; r++)
            Assert.That(pooled.AsSpan(2 * r, 2).ToArray(), Is.EqualTo(new float[] { (r * 6 + expected[r]) * 2, (r * 6 + expected[r]) * 2 + 1 }), $"row {r}");
    }

    [Test]
    public void TheCausalMaskHidesLaterTokens()
    {
        const int Changed = 4;                       // position of the token that differs
        var a = Ids(320, 1125, 539, 1929, 2368);
        var b = (int[])a.Clone();
        b[Changed] = b[77 + Changed] = 48136;
        var ha = TinyForward("cpu", a);
        var hb = TinyForward("cpu", b);
        for (int batch = 0; batch < 2; batch++)
        {
            int start = batch * 77 * 32;
            Assert.That(hb.AsSpan(start, Changed * 32).ToArray(), Is.EqualTo(ha.AsSpan(start, Changed * 32).ToArray()),
                "hidden states before the changed token");
            for (int t = Changed; t < 77; t++)
                Assert.That(hb.AsSpan(start + t * 32, 32).ToArray(), Is.Not.EqualTo(ha.AsSpan(start + t * 32, 32).ToArray()),
                    $"hidden state of token {t}, which sees the changed token");
        }
    }

    [Test]
    public void CpuAgreesWithTheReference()
    {
        // Two layers of f32 GEMMs, attention and layer norms over width 32: rounding stays near 1e-6 of values ≈ 1.
        const double Atol = 2e-5, Rtol = 1e-4;
        var ids = Ids(320, 1125, 539, 48136, 1929);
        Close.Assert(TinyForward("cpu", ids), TinyForward("reference", ids), Atol, Rtol, "tiny CLIP last_hidden_state");
    }

    [Test]
    public void EncoderLayerGradientsMatchFiniteDifferences()
    {
        using var reference = Backends.Create("reference");
        var layer = new ClipEncoderLayer(hidden: 8, intermediate: 16, heads: 2, hiddenAct: "quick_gelu", layerNormEps: 1e-5f,
            layers: 2, initializerFactor: 1.0);
        using var store = ModelData.Initialized(reference, layer, seed: 3);
        TensorGradCheck.Check(reference, t => layer.Forward(t[0]), [TensorGradCheck.Input(5, 1.0, 2, 5, 8)],
            "clip encoder layer", parameters: store);
    }

    [Test]
    public void RejectsIdsThatAreNotI32BatchByTokens()
    {
        using var backend = Backends.Create("cpu");
        var model = new ClipTextModel(Tiny);
        using var store = new ParameterStore(backend, model);
        using var scope = new TensorScope();
        var e = Assert.Throws<ArgumentException>(() => model.Forward(Tensor.Zeros(backend, 2, 77)))!;
        Assert.That(e.Message, Does.Contain("i32"));
        e = Assert.Throws<ArgumentException>(() => model.Forward(Tensor.FromInts(backend, new int[78], 1, 78)))!;
        Assert.That(e.Message, Does.Contain("max_position_embeddings 77"));
    }
}
