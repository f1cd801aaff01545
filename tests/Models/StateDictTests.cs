// Loading and saving a model's parameters as safetensors: exact round trips, narrow dtypes, and strict key checks.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Formats;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class StateDictTests
{
    sealed class Attn : Module
    {
        public Attn()
        {
            AddParameter("weight", Init.FanIn(6), 4, 6);
            AddParameter("bias", Init.FanIn(6), 4);
        }
    }

    sealed class Net : Module
    {
        public Net()
        {
            AddModule("to_q", new Attn());
            AddParameter("scale", Init.Ones, 3, 1, 2);
        }
    }

    string _dir = null!;
    IBackend _backend = null!;

    [SetUp] public void Create() { _dir = ModelData.TempFolder(); _backend = Backends.Create("cpu"); }
    [TearDown] public void Delete() { Directory.Delete(_dir, true); _backend.Dispose(); }

    (Net Net, ParameterStore Store) Model(ulong seed)
    {
        var net = new Net();
        return (net, ModelData.Initialized(_backend, net, seed));
    }

    float[] Values(ParameterStore s)
    {
        var v = new float[s.Length];
        _backend.Download<float>(v, s.Values);
        return v;
    }

    [Test]
    public void SaveThenLoadIsBitExact()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        var (_, saved) = Model(1);
        using (saved) StateDict.Save(saved, path);
        var (_, loaded) = Model(2);
        using (loaded)
        {
            using (var expect = Model(1).Store) Assert.That(Values(loaded), Is.Not.EqualTo(Values(expect)));
            StateDict.Load(loaded, path);
            using (var expect = Model(1).Store) Assert.That(Values(loaded), Is.EqualTo(Values(expect)));
        }
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Tensors.Select(t => t.Name), Is.EquivalentTo(new[] { "to_q.weight", "to_q.bias", "scale" }));
        Assert.That(file["scale"].Shape, Is.EqualTo(new long[] { 3, 1, 2 }));
        Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
    }

    [Test]
    public void Fp16FilesLoadWithinHalfPrecision()
    {
        string path = Path.Combine(_dir, "model.fp16.safetensors");
        using var a = Model(3).Store;
        StateDict.Save(a, path, SafetensorsDType.F16);
        using var b = Model(4).Store;
        StateDict.Load(b, path);
        var want = Values(a);
        var got = Values(b);
        for (int i = 0; i < want.Length; i++)
            Assert.That(got[i], Is.EqualTo(want[i]).Within(Math.Abs(want[i]) / 2048 + 1e-7), $"element {i}");   // f16: 11-bit significand
    }

    [Test]
    public void MissingUnexpectedAndMisshapedTensorsAreErrorsNamingTheFileAndKeys()
    {
        string path = Path.Combine(_dir, "bad.safetensors");
        void Write(params SafetensorsEntry[] entries) => SafetensorsWriter.Write(path, entries);
        SafetensorsEntry E(string name, params long[] shape) =>
            SafetensorsEntry.FromFloats(name, shape, new float[shape.Aggregate(1L, (n, d) => n * d)]);
        using var store = Model(5).Store;

        Write(E("to_q.weight", 4, 6), E("scale", 3, 1, 2));
        Assert.That(() => StateDict.Load(store, path), Throws.InstanceOf<InvalidDataException>()
            .With.Message.Contains(path).And.Message.Contains("not in the file: to_q.bias"));

        Write(E("to_q.weight", 4, 6), E("to_q.bias", 4), E("scale", 3, 1, 2), E("extra", 1));
        Assert.That(() => StateDict.Load(store, path), Throws.InstanceOf<InvalidDataException>()
            .With.Message.Contains("not parameters of the model: extra"));
        Assert.DoesNotThrow(() => StateDict.Load(store, path, ignore: new HashSet<string> { "extra" }));

        Write(E("to_q.weight", 6, 4), E("to_q.bias", 4), E("scale", 3, 1, 2));
        Assert.That(() => StateDict.Load(store, path), Throws.InstanceOf<InvalidDataException>()
            .With.Message.Contains("'to_q.weight' has shape [6, 4]").And.Message.Contains("[4, 6]"));
    }

    [Test]
    public void KeysCanBeRenamedAndConvStoredLinearWeightsLoad()
    {
        string path = Path.Combine(_dir, "legacy.safetensors");
        var weight = Enumerable.Range(0, 24).Select(i => (float)i).ToArray();
        SafetensorsWriter.Write(path, [
            SafetensorsEntry.FromFloats("query.weight", [4, 6, 1, 1], weight),
            SafetensorsEntry.FromFloats("query.bias", [4], new float[4]),
            SafetensorsEntry.FromFloats("scale", [3, 1, 2], new float[6]),
        ]);
        var (net, store) = Model(6);
        using (store)
        {
            StateDict.Load(store, path, key => key.Replace("query.", "to_q."));
            Assert.That(store["to_q.weight"].Value.ToArray(), Is.EqualTo(weight));
        }
    }
}
