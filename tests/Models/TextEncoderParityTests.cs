// CLIPTextModel against the libtorch peer: last_hidden_state and pooler_output for real tokenizer output, weights both ways.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Tokenizer;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

/// <summary>
/// The peer's CLIPTextModel is written from transformers' modeling_clip.py, independently of ours. The prompts go
/// through the real SD tokenizer: a short one, an empty one (BOS, EOS, then padding), and one long enough to fill all 77
/// positions. Each case runs both ways: the peer's random weights read by us, and ours (F32, then F16) read by the peer.
/// </summary>
[Category("Parity")]
public class TextEncoderParityTests
{
    // Both sides compute in f32 with different summation orders through 2 (tiny) or 12 (SD 1.5) pre-LN layers; measured
    // worst differences are printed by each case: up to 4.5e-7 of the output's scale on the tiny config and 1.1e-6 on
    // SD 1.5's; 1e-4, as for the UNet, leaves room across machines.
    const double RelativeTolerance = 1e-4;

    static readonly string[] Prompts =
    [
        "a photo of sks dog",
        "",
        string.Join(' ', Enumerable.Repeat("a very detailed photograph of a small dog on a sunny beach", 10)),   // > 75 tokens
    ];

    string _dir = null!;

    [SetUp] public void Create() => _dir = ModelData.TempFolder();
    [TearDown] public void Delete() => Directory.Delete(_dir, true);

    [TestCase("tiny-sd/text_encoder")]
    [TestCase("sd15/text_encoder")]
    public void PeerWeightsReadByUsMatch(string configFolder)
    {
        Peer.Require();
        string model = Path.Combine(_dir, "model");
        Peer.Run("clip-init", "--config", ModelData.Path([.. configFolder.Split('/'), "config.json"]), "--out", model, "--seed", "5");
        string weights = Path.Combine(model, "text_encoder", "model.safetensors");
        var (ours, _) = Ours(weights, Path.Combine(model, "text_encoder", "config.json"));
        Check(model, ours, configFolder);
    }

    [TestCase("tiny-sd/text_encoder", SafetensorsDType.F32)]
    [TestCase("tiny-sd/text_encoder", SafetensorsDType.F16)]
    [TestCase("sd15/text_encoder", SafetensorsDType.F16)]
    public void OurWeightsReadByThePeerMatch(string configFolder, SafetensorsDType dtype)
    {
        Peer.Require();
        string folder = Path.Combine(_dir, "model", "text_encoder"), config = Path.Combine(folder, "config.json");
        Directory.CreateDirectory(folder);
        File.Copy(ModelData.Path([.. configFolder.Split('/'), "config.json"]), config);
        using (var backend = Backends.Create("cpu"))
        using (var store = ModelData.Initialized(backend, new ClipTextModel(ClipTextConfig.Load(config)), seed: 6))
            StateDict.Save(store, Path.Combine(folder, "model.safetensors"), dtype);
        var (ours, _) = Ours(Path.Combine(folder, "model.safetensors"), config);
        Check(Path.Combine(_dir, "model"), ours, $"{configFolder} {dtype}");
    }

    /// <summary>transformers before 4.31 saved the buffer text_model.embeddings.position_ids with the weights; both loaders
    /// skip it, and the outputs do not change.</summary>
    [Test]
    public void AFileWithThePositionIdsBufferLoadsTheSame()
    {
        Peer.Require();
        string model = Path.Combine(_dir, "model"), folder = Path.Combine(model, "text_encoder");
        Peer.Run("clip-init", "--config", ModelData.Path("tiny-sd", "text_encoder", "config.json"), "--out", model, "--seed", "7");
        string weights = Path.Combine(folder, "model.safetensors"), config = Path.Combine(folder, "config.json");
        var (before, _) = Ours(weights, config);
        using (var file = SafetensorsFile.Open(weights))
        {
            var entries = file.Tensors.Select(t => SafetensorsEntry.FromFloats(t.Name, t.Shape, file.ReadFloats(t.Name))).ToList();
            var positions = new byte[77 * 8];
            for (int i = 0; i < 77; i++) BitConverter.TryWriteBytes(positions.AsSpan(i * 8), (long)i);
            entries.Add(SafetensorsEntry.FromBytes("text_model.embeddings.position_ids", SafetensorsDType.I64, [1, 77], positions));
            SafetensorsWriter.Write(weights + ".new", entries);
        }
        File.Move(weights + ".new", weights, overwrite: true);
        var (after, _) = Ours(weights, config);
        Assert.That(after.Hidden, Is.EqualTo(before.Hidden));
        Check(model, after, "with position_ids");
    }

    /// <summary>Our last_hidden_state and pooler_output for the prompts, and the ids the peer is given.</summary>
    static ((float[] Hidden, float[] Pooled) Outputs, int[] Ids) Ours(string weights, string config)
    {
        var tokenizer = ClipTokenizer.Load(ModelData.Path("tiny-sd", "tokenizer"));
        int[] ids = Prompts.SelectMany(tokenizer.Encode).ToArray();
        Assert.That(ids[^1], Is.EqualTo(tokenizer.EosId), "the long prompt fills all 77 positions, ending in EOS");
        Assert.That(ids[2 * 77 + 75], Is.Not.EqualTo(tokenizer.PadId));
        using var backend = Backends.Create("cpu");
        var model = new ClipTextModel(ClipTextConfig.Load(config));
        using var store = new ParameterStore(backend, model);
        StateDict.Load(store, weights, ignore: ClipTextModel.BufferKeys);
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var hidden = model.Forward(Tensor.FromInts(backend, ids, Prompts.Length, 77));
        return ((hidden.ToArray(), model.Pool(hidden, ids).ToArray()), ids);
    }

    void Check(string model, (float[] Hidden, float[] Pooled) ours, string what)
    {
        var tokenizer = ClipTokenizer.Load(ModelData.Path("tiny-sd", "tokenizer"));
        string ids = string.Join(" ; ", Prompts.Select(p => string.Join(' ', tokenizer.Encode(p))));
        string output = Path.Combine(_dir, "out.safetensors");
        Peer.Run("clip-forward", "--model", model, "--ids", ids, "--out", output, "--threads", "1");
        using var file = SafetensorsFile.Open(output);
        Peer.Compare(ours.Hidden, file.ReadFloats("last_hidden_state"), RelativeTolerance, $"{what} last_hidden_state");
        Peer.Compare(ours.Pooled, file.ReadFloats("pooler_output"), RelativeTolerance, $"{what} pooler_output");
    }
}
