// AutoencoderKL against the libtorch peer: the posterior (mean, clamped logvar) and decodes, weights both ways, old key names.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Vae;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

/// <summary>
/// The peer's AutoencoderKL is written from diffusers' autoencoder_kl.py and vae.py, independently of ours. Inputs come
/// from the peer's make-inputs: images in [−1, 1) and N(0, 1) latents. Compared: the posterior's mean and logvar (clamped
/// to [−30, 20] as diffusers' DiagonalGaussianDistribution does), the decode of the mean, and the decode of the latents.
/// </summary>
[Category("Parity")]
public class VaeParityTests
{
    // f32 on both sides with different summation orders through ~30 convolutions and the mid-block attention; each case
    // prints its worst difference: measured up to 7.8e-6 of the output's scale on the tiny config and 2.1e-5 for the SD 1.5
    // decoder at 64×64 (the deepest stack); 1e-4, as for the UNet, leaves room across machines.
    const double RelativeTolerance = 1e-4;

    string _dir = null!;

    [SetUp] public void Create() => _dir = ModelData.TempFolder();
    [TearDown] public void Delete() => Directory.Delete(_dir, true);

    [TestCase("tiny-sd/vae", 16)]
    [TestCase("sd15/vae", 64)]
    public void PeerWeightsReadByUsMatch(string configFolder, int size)
    {
        Peer.Require();
        string model = Path.Combine(_dir, "model");
        Peer.Run("vae-init", "--config", Config(configFolder), "--out", model, "--seed", "8");
        Check(model, configFolder, size, configFolder);
    }

    [TestCase(SafetensorsDType.F32)]
    [TestCase(SafetensorsDType.F16)]
    public void OurWeightsReadByThePeerMatch(SafetensorsDType dtype)
    {
        Peer.Require();
        string folder = Path.Combine(_dir, "model", "vae"), config = Path.Combine(folder, "config.json");
        Directory.CreateDirectory(folder);
        File.Copy(Config("tiny-sd/vae"), config);
        using (var backend = Backends.Create("cpu"))
        using (var store = ModelData.Initialized(backend, new AutoencoderKL(AutoencoderKLConfig.Load(config)), seed: 9))
            StateDict.Save(store, Path.Combine(folder, "diffusion_pytorch_model.safetensors"), dtype);
        Check(Path.Combine(_dir, "model"), "tiny-sd/vae", 16, $"ours as {dtype}");
    }

    /// <summary>diffusers before 0.14 named the mid-block attention query, key, value and proj_attn; both loaders rename
    /// them as diffusers' loader does, and the outputs match.</summary>
    [Test]
    public void OldAttentionNamesLoadTheSame()
    {
        Peer.Require();
        string model = Path.Combine(_dir, "model");
        Peer.Run("vae-init", "--config", Config("tiny-sd/vae"), "--out", model, "--seed", "10");
        string weights = Path.Combine(model, "vae", "diffusion_pytorch_model.safetensors");
        using (var file = SafetensorsFile.Open(weights))
        {
            static string Old(string key) => key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.")
                .Replace(".to_out.0.", ".proj_attn.");
            var entries = file.Tensors.Select(t => SafetensorsEntry.FromFloats(Old(t.Name), t.Shape, file.ReadFloats(t.Name))).ToList();
            Assert.That(entries.Select(e => e.Name), Has.Some.Contains("proj_attn"));
            SafetensorsWriter.Write(weights + ".old", entries);
        }
        File.Move(weights + ".old", weights, overwrite: true);
        Check(model, "tiny-sd/vae", 16, "old attention names");
    }

    static string Config(string folder) => ModelData.Path([.. folder.Split('/'), "config.json"]);

    void Check(string model, string configFolder, int size, string what)
    {
        string inputs = Path.Combine(_dir, "inputs.safetensors"), output = Path.Combine(_dir, "out.safetensors");
        Peer.Run("make-inputs", "--config", Config(configFolder), "--out", inputs, "--batch", "2", "--size", size.ToString(), "--seed", "11");
        Peer.Run("vae-forward", "--model", model, "--inputs", inputs, "--out", output, "--threads", "1");

        using var backend = Backends.Create("cpu");
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(model, "vae", "config.json")));
        using var store = new ParameterStore(backend, vae);
        StateDict.Load(store, Path.Combine(model, "vae", "diffusion_pytorch_model.safetensors"), AutoencoderKL.MapLegacyKey);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        using var input = SafetensorsFile.Open(inputs);
        using var peer = SafetensorsFile.Open(output);
        Tensor Floats(string name) => Tensor.FromArray(backend, input.ReadFloats(name), Array.ConvertAll(input[name].Shape, d => (int)d));

        var posterior = vae.Encode(Floats("sample"));
        var logVar = Array.ConvertAll(posterior.LogVar.ToArray(), v => Math.Clamp(v, -30f, 20f));
        Peer.Compare(posterior.Mean.ToArray(), peer.ReadFloats("mean"), RelativeTolerance, $"{what} posterior mean");
        Peer.Compare(logVar, peer.ReadFloats("logvar"), RelativeTolerance, $"{what} posterior logvar");
        Peer.Compare(vae.Decode(posterior.Mean).ToArray(), peer.ReadFloats("decoded"), RelativeTolerance, $"{what} decode of the mean");
        Peer.Compare(vae.Decode(Floats("latents")).ToArray(), peer.ReadFloats("latents_decoded"), RelativeTolerance, $"{what} decode of latents");
    }
}
