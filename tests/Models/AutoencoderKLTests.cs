// AutoencoderKL: the real SD 1.5 parameter count and keys, legacy key mapping, tiny forward shapes, sampling, gradients.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Layers;
using DreamBooth.Models.Vae;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class AutoencoderKLTests
{
    static AutoencoderKLConfig Sd15 => AutoencoderKLConfig.Load(ModelData.Path("sd15", "vae", "config.json"));
    static AutoencoderKLConfig Tiny => AutoencoderKLConfig.Load(ModelData.Path("tiny-sd", "vae", "config.json"));

    [Test]
    public void Sd15HasTheParameterCountOfTheRealVae() =>
        Assert.That(new AutoencoderKL(Sd15).ParameterCount(), Is.EqualTo(83_653_863));

    [Test]
    public void Sd15KeysAreTheCheckpointKeys()
    {
        var named = new AutoencoderKL(Sd15).NamedParameters().ToDictionary(n => n.Name, n => n.Parameter.Shape);
        Assert.That(named["encoder.conv_in.weight"], Is.EqualTo(new[] { 128, 3, 3, 3 }));
        Assert.That(named["encoder.down_blocks.0.resnets.0.norm1.weight"], Is.EqualTo(new[] { 128 }));
        Assert.That(named["encoder.down_blocks.1.resnets.0.conv_shortcut.weight"], Is.EqualTo(new[] { 256, 128, 1, 1 }));
        Assert.That(named["encoder.down_blocks.2.downsamplers.0.conv.weight"], Is.EqualTo(new[] { 512, 512, 3, 3 }));
        Assert.That(named["encoder.mid_block.attentions.0.group_norm.weight"], Is.EqualTo(new[] { 512 }));
        Assert.That(named["encoder.mid_block.attentions.0.to_q.weight"], Is.EqualTo(new[] { 512, 512 }));
        Assert.That(named["encoder.mid_block.attentions.0.to_out.0.bias"], Is.EqualTo(new[] { 512 }));
        Assert.That(named["encoder.mid_block.resnets.1.conv2.weight"], Is.EqualTo(new[] { 512, 512, 3, 3 }));
        Assert.That(named["encoder.conv_norm_out.weight"], Is.EqualTo(new[] { 512 }));
        Assert.That(named["encoder.conv_out.weight"], Is.EqualTo(new[] { 8, 512, 3, 3 }));
        Assert.That(named["quant_conv.weight"], Is.EqualTo(new[] { 8, 8, 1, 1 }));
        Assert.That(named["post_quant_conv.weight"], Is.EqualTo(new[] { 4, 4, 1, 1 }));
        Assert.That(named["decoder.conv_in.weight"], Is.EqualTo(new[] { 512, 4, 3, 3 }));
        Assert.That(named["decoder.mid_block.attentions.0.to_v.bias"], Is.EqualTo(new[] { 512 }));
        Assert.That(named["decoder.up_blocks.0.resnets.2.conv1.weight"], Is.EqualTo(new[] { 512, 512, 3, 3 }));
        Assert.That(named["decoder.up_blocks.0.upsamplers.0.conv.weight"], Is.EqualTo(new[] { 512, 512, 3, 3 }));
        Assert.That(named["decoder.up_blocks.2.resnets.0.conv_shortcut.weight"], Is.EqualTo(new[] { 256, 512, 1, 1 }));
        Assert.That(named["decoder.up_blocks.3.resnets.0.conv_shortcut.weight"], Is.EqualTo(new[] { 128, 256, 1, 1 }));
        Assert.That(named["decoder.conv_norm_out.bias"], Is.EqualTo(new[] { 128 }));
        Assert.That(named["decoder.conv_out.weight"], Is.EqualTo(new[] { 3, 128, 3, 3 }));
        // the last encoder block does not downsample, the last decoder block does not upsample
        Assert.That(named.Keys, Has.None.StartsWith("encoder.down_blocks.3.downsamplers"));
        Assert.That(named.Keys, Has.None.StartsWith("decoder.up_blocks.3.upsamplers"));
        Assert.That(named.Keys, Has.None.Contains("up_blocks.0.resnets.0.conv_shortcut"));   // 512 → 512
    }

    [Test]
    public void NamesAreUnique() => Assert.That(new AutoencoderKL(Sd15).NamedParameters().Select(n => n.Name), Is.Unique);

    [TestCase("encoder.mid_block.attentions.0.query.weight", "encoder.mid_block.attentions.0.to_q.weight")]
    [TestCase("encoder.mid_block.attentions.0.key.bias", "encoder.mid_block.attentions.0.to_k.bias")]
    [TestCase("decoder.mid_block.attentions.0.value.weight", "decoder.mid_block.attentions.0.to_v.weight")]
    [TestCase("decoder.mid_block.attentions.0.proj_attn.bias", "decoder.mid_block.attentions.0.to_out.0.bias")]
    [TestCase("decoder.mid_block.attentions.0.group_norm.weight", "decoder.mid_block.attentions.0.group_norm.weight")]
    [TestCase("decoder.mid_block.attentions.0.to_k.weight", "decoder.mid_block.attentions.0.to_k.weight")]
    [TestCase("encoder.down_blocks.0.resnets.0.conv1.weight", "encoder.down_blocks.0.resnets.0.conv1.weight")]
    [TestCase("key.weight", "key.weight")]
    [TestCase("encoder.attentions.x.query.weight", "encoder.attentions.x.query.weight")]
    public void LegacyAttentionKeysMapToTheCurrentNames(string legacy, string current) =>
        Assert.That(AutoencoderKL.MapLegacyKey(legacy), Is.EqualTo(current));

    [Test]
    public void EveryLegacyCheckpointKeyMapsOntoAParameter()
    {
        var names = new AutoencoderKL(Tiny).NamedParameters().Select(n => n.Name).ToHashSet();
        foreach (string part in new[] { "encoder", "decoder" })
            foreach (string legacy in new[] { "query", "key", "value", "proj_attn" })
                foreach (string kind in new[] { "weight", "bias" })
                    Assert.That(names, Does.Contain(AutoencoderKL.MapLegacyKey($"{part}.mid_block.attentions.0.{legacy}.{kind}")));
    }

    [Test]
    public void ALegacyCheckpointLoadsThroughMapLegacyKey()
    {
        // An old diffusers VAE: attention projections named query/key/value/proj_attn, stored as 1×1 convolutions.
        string dir = ModelData.TempFolder(), path = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
        try
        {
            using var backend = Backends.Create("cpu");
            var source = new AutoencoderKL(Tiny);
            using var saved = ModelData.Initialized(backend, source, seed: 12);
            string Legacy(string key) => key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.")
                .Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn.");
            SafetensorsWriter.Write(path, saved.Named.Select(n =>
            {
                long[] shape = n.Name.Contains(".attentions.") && n.Parameter.Shape.Length == 2
                    ? [n.Parameter.Shape[0], n.Parameter.Shape[1], 1, 1]
                    : n.Parameter.Shape.Select(d => (long)d).ToArray();
                return SafetensorsEntry.FromFloats(Legacy(n.Name), shape, n.Parameter.Value.ToArray());
            }).ToList());

            var loaded = new AutoencoderKL(Tiny);
            using var store = new ParameterStore(backend, loaded);
            StateDict.Load(store, path, AutoencoderKL.MapLegacyKey);
            foreach (var (name, p) in store.Named)
                Assert.That(p.Value.ToArray(), Is.EqualTo(saved[name].Value.ToArray()), name);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Test]
    public void TinyEncodeAndDecodeShapes()
    {
        using var backend = Backends.Create("cpu");
        var vae = new AutoencoderKL(Tiny);
        using var store = ModelData.Initialized(backend, vae, seed: 5);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var x = Tensor.RandomNormal(backend, 1, 0, 2, 3, 32, 24);
        var posterior = vae.Encode(x);
        // tiny-sd has two blocks: one downsampler, so latents are 1/2 the image size (SD 1.5's four give 1/8)
        Assert.That(posterior.Mean.Shape.ToArray(), Is.EqualTo(new[] { 2, 4, 16, 12 }));
        Assert.That(posterior.LogVar.Shape.ToArray(), Is.EqualTo(new[] { 2, 4, 16, 12 }));
        var z = AutoencoderKL.Sample(posterior, Tensor.RandomNormal(backend, 2, 0, 2, 4, 16, 12));
        var image = vae.Decode(z);
        Assert.That(image.Shape.ToArray(), Is.EqualTo(new[] { 2, 3, 32, 24 }));
        Assert.That(image.ToArray(), Is.All.Not.NaN);
        Assert.That(vae.ScalingFactor, Is.EqualTo(0.18215f));
    }

    [Test]
    public void EncodingWithoutTheTapeKeepsOnlyItsResults()
    {
        using var backend = Backends.Create("cpu");
        var vae = new AutoencoderKL(Tiny);
        using var store = ModelData.Initialized(backend, vae, seed: 5);
        using var scope = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 1, 3, 16, 16);
        long before = backend.Memory.CurrentBytes;
        using (Tape.NoGrad()) vae.Encode(x);
        // left alive: the encoder's output and quant_conv's (N, 2·latent, h, w) each; with N = 1 mean and logvar are
        // views of quant_conv's halves (F.Chunk2 along axis 1 after an axis of size 1)
        Assert.That(backend.Memory.CurrentBytes - before, Is.EqualTo((2 + 2) * 4 * 8 * 8 * sizeof(float)));
    }

    [Test]
    public void SampleIsMeanPlusClampedStandardDeviationTimesNoise()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        float[] mean = [0.5f, -1f, 2f, 0f], logVar = [0f, 2f, -40f, 25f], noise = [1f, -0.5f, 2f, 1f];
        var z = AutoencoderKL.Sample(new Posterior(Tensor.FromArray(backend, mean, 1, 4, 1, 1), Tensor.FromArray(backend, logVar, 1, 4, 1, 1)),
            Tensor.FromArray(backend, noise, 1, 4, 1, 1)).ToArray();
        // logvar −40 is clamped to −30, 25 to 20
        double[] expected = [0.5 + 1, -1 - 0.5 * Math.E, 2 + Math.Exp(-15) * 2, Math.Exp(10)];
        Close.Assert(z, expected, 0, 1e-6, "posterior sample");   // one f32 exp and one multiply-add each
    }

    [Test]
    public void SampleRefusesAPosteriorThatNeedsGradients()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var mean = Tensor.Zeros(backend, 1, 4, 2, 2);
        mean.RequiresGrad = true;
        Assert.Throws<InvalidOperationException>(() => AutoencoderKL.Sample(new Posterior(mean, Tensor.Zeros(backend, 1, 4, 2, 2)),
            Tensor.Zeros(backend, 1, 4, 2, 2)));
    }

    [Test]
    public void ResnetBlockGradientsMatchFiniteDifferences()
    {
        using var reference = Backends.Create("reference");
        var block = new ResnetBlock2D(inChannels: 4, outChannels: 8, tembChannels: null, groups: 2, eps: 1e-6f);   // with a 1×1 conv_shortcut
        using var store = ModelData.Initialized(reference, block, seed: 4);
        TensorGradCheck.Check(reference, t => block.Forward(t[0]), [TensorGradCheck.Input(6, 1.0, 2, 4, 5, 5)],
            "vae resnet block", samples: 60, parameters: store);
    }

    [Test]
    public void MidAttentionRunsAtSd15Width()
    {
        // SD's mid attention is one head 512 wide, wider than the fused attention kernel takes.
        using var backend = Backends.Create("cpu");
        var attention = new VaeAttention(channels: 512, groups: 32, eps: 1e-6f);
        using var store = ModelData.Initialized(backend, attention, seed: 2);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var y = attention.Forward(Tensor.RandomNormal(backend, 3, 0, 1, 512, 4, 4));
        Assert.That(y.Shape.ToArray(), Is.EqualTo(new[] { 1, 512, 4, 4 }));
        Assert.That(y.ToArray(), Is.All.Not.NaN);
    }

    [Test]
    public void MidAttentionGradientsMatchFiniteDifferences()
    {
        using var reference = Backends.Create("reference");
        var attention = new VaeAttention(channels: 8, groups: 4, eps: 1e-6f);
        using var store = ModelData.Initialized(reference, attention, seed: 8);
        TensorGradCheck.Check(reference, t => attention.Forward(t[0]), [TensorGradCheck.Input(9, 1.0, 2, 8, 3, 4)],
            "vae mid attention", parameters: store);
    }
}
