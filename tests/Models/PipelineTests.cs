// The diffusers pipeline folder: random init, save and load round trips, inspect, and text-to-image sampling end to end.
using DreamBooth.Kernels;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class PipelineTests
{
    string _dir = null!;
    IBackend _backend = null!;

    /// <summary>A copy of tiny-sd's configs (or sd15's, given the real SD tokenizer that tiny-sd ships): the folder
    /// `init-model --config` takes.</summary>
    public static string TinyConfigs(string root, string configs = "tiny-sd")
    {
        string dir = Path.Combine(root, configs);
        foreach (string file in Directory.GetFiles(ModelData.Path(configs), "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(dir, Path.GetRelativePath(ModelData.Path(configs), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        if (Directory.Exists(Path.Combine(dir, "tokenizer"))) return dir;
        Directory.CreateDirectory(Path.Combine(dir, "tokenizer"));      // sd15's configs come without it here
        foreach (string file in Directory.GetFiles(ModelData.Path("tiny-sd", "tokenizer")))
            File.Copy(file, Path.Combine(dir, "tokenizer", Path.GetFileName(file)));
        return dir;
    }

    [SetUp] public void Create() { _dir = ModelData.TempFolder(); _backend = Backends.Create("cpu"); }
    [TearDown] public void Delete() { Directory.Delete(_dir, true); _backend.Dispose(); }

    static float[] All(StableDiffusionPipeline p)
    {
        var stores = new[] { p.TextEncoderWeights, p.UnetWeights, p.VaeWeights! };
        return stores.SelectMany(s =>
        {
            var v = new float[s.Length];
            s.Backend.Download<float>(v, s.Values);
            return v;
        }).ToArray();
    }

    [Test]
    public void SavedPipelinesLoadBitExactAndPassInspect()
    {
        string saved = Path.Combine(_dir, "model");
        using var made = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 5);
        made.Save(saved);
        using var loaded = StableDiffusionPipeline.Load(saved, _backend);
        Assert.That(All(loaded), Is.EqualTo(All(made)));

        var report = Inspector.Inspect(saved);
        Assert.That(report.Problems, Is.Empty);
        Assert.That(report.Lines, Has.Some.Contains("985,444 parameters").And.Some.Contains("match the config"));
        foreach (string sub in new[] { "model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                     "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt" })
            Assert.That(File.Exists(Path.Combine(saved, sub)), sub);
    }

    [Test]
    public void TheFp16VariantIsWrittenAndReadBesideThePlainWeights()
    {
        string saved = Path.Combine(_dir, "model");
        using var made = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 6);
        made.Save(saved, "fp16");
        Assert.That(File.Exists(Path.Combine(saved, "unet", "diffusion_pytorch_model.fp16.safetensors")));
        using (var file = SafetensorsFile.Open(Path.Combine(saved, "unet", "diffusion_pytorch_model.fp16.safetensors")))
            Assert.That(file.Tensors.Select(t => t.DType).Distinct(), Is.EqualTo(new[] { SafetensorsDType.F16 }));
        Assert.That(() => StableDiffusionPipeline.Load(saved, _backend), Throws.InstanceOf<FileNotFoundException>()
            .With.Message.Contains("diffusion_pytorch_model.safetensors").Or.Message.Contains("model.safetensors"));
        using var loaded = StableDiffusionPipeline.Load(saved, _backend, "fp16");
        var want = All(made);
        var got = All(loaded);
        for (int i = 0; i < want.Length; i++)   // f16 keeps 11 significant bits (and subnormals below 6e-5)
            Assert.That(got[i], Is.EqualTo(want[i]).Within(Math.Abs(want[i]) / 2048 + 6e-8), $"parameter {i}");
    }

    [Test]
    public void InspectPrintsTheRealSd15Counts()
    {
        var (lines, problems) = Inspector.Inspect(TinyConfigs(_dir, "sd15"));
        Assert.That(problems, Is.Empty);
        Assert.That(lines, Has.Some.Contains("UNet").And.Some.Contains("859,520,964"));
        Assert.That(lines, Has.Some.Contains("CLIP text encoder").And.Some.Contains("123,060,480"));
        Assert.That(lines, Has.Some.Contains("VAE").And.Some.Contains("83,653,863"));
    }

    [Test]
    public void InspectReportsWeightsThatDoNotFitTheConfig()
    {
        string saved = Path.Combine(_dir, "model");
        using (var made = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 7)) made.Save(saved);
        string unetWeights = StableDiffusionPipeline.WeightsPath(saved, "unet", null);
        File.Copy(StableDiffusionPipeline.WeightsPath(saved, "vae", null), unetWeights, overwrite: true);
        var problems = Inspector.Inspect(saved).Problems;
        Assert.That(problems, Has.Some.Contains(unetWeights).And.Some.Contains("is not a parameter of the model"));
        Assert.That(problems, Has.Some.Contains("parameter(s) missing"));

        Directory.Delete(Path.Combine(saved, "tokenizer"), true);
        var partial = Inspector.Inspect(saved);
        Assert.That(partial.Problems, Has.Some.Contains(Path.Combine(saved, "tokenizer")));
        Assert.That(partial.Lines[^1], Does.StartWith("total ").And.EndWith("(partial: without tokenizer, unreadable)"));
    }

    /// <summary>What a new user met: a missing path, a config that is not an object, a renamed component folder, and
    /// messages with .NET's parser positions and "1 bytes".</summary>
    [Test]
    public void InspectNamesMissingPathsBadConfigsAndRenamedComponents()
    {
        string missing = Path.Combine(_dir, "absent");
        Assert.That(() => Inspector.Inspect(missing), Throws.InstanceOf<FileNotFoundException>().With.Message.EqualTo($"{missing}: no such file or folder"));

        string saved = Path.Combine(_dir, "model"), renamed = Path.Combine(_dir, "my-unet");
        using (var made = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 7)) made.Save(saved);
        Directory.Move(Path.Combine(saved, "unet"), renamed);
        Assert.That(Inspector.Inspect(renamed).Lines, Has.Some.Contains("UNet").And.Some.Contains("match the config"));

        string config = Path.Combine(renamed, "config.json");
        File.WriteAllText(config, "[]");
        Assert.That(() => Inspector.Inspect(renamed), Throws.InstanceOf<InvalidDataException>().With.Message.EqualTo($"{config}: a JSON Array, not an object"));
        File.WriteAllText(config, "{\"_class_name\": x}");
        Assert.That(() => Inspector.Inspect(renamed), Throws.InstanceOf<InvalidDataException>()
            .With.Message.StartsWith($"{config}: not valid JSON: ").And.Message.Contains("(line 1, column").And.Message.Not.Contains("LineNumber"));

        string tiny = Path.Combine(_dir, "tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);
        Assert.That(() => Inspector.Inspect(tiny), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("the header is not valid JSON")
            .And.Message.Not.Contains("LineNumber"));
        File.WriteAllBytes(tiny, [1]);
        Assert.That(() => Inspector.Inspect(tiny), Throws.InstanceOf<InvalidDataException>()
            .With.Message.EqualTo($"{tiny}: 1 byte is too short for a safetensors file (the header length alone is 8 bytes)"));
    }

    [TestCase("ddim", 7.5)]
    [TestCase("ddpm", 3.0)]
    [TestCase("euler_a", 1.0)]
    public void SamplingIsReproducibleFromTheSeed(string scheduler, double guidance)
    {
        using var p = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 8);
        var request = new GenerationRequest("a photo of sks dog", "blurry", NumImages: 2, Steps: 4, GuidanceScale: guidance,
            Scheduler: scheduler, Seed: 11);
        int steps = 0;
        var a = TextToImage.Generate(p, request, (done, total) => steps = total);
        var b = TextToImage.Generate(p, request);
        var c = TextToImage.Generate(p, request with { Seed = 12 });
        Assert.That((a.Count, a.Height, a.Width, a.Pixels.Length), Is.EqualTo((2, 32, 32, 2 * 3 * 32 * 32)));   // 16² latents × VAE factor 2
        Assert.That(steps, Is.EqualTo(4));
        Assert.That(a.Pixels, Is.All.InRange(0f, 1f));
        Assert.That(b.Pixels, Is.EqualTo(a.Pixels));
        Assert.That(c.Pixels, Is.Not.EqualTo(a.Pixels));
    }

    [Test]
    public void SizesMustBeMultiplesOfTheVaeFactorTimesTheUnetDownsampling()
    {
        using var p = StableDiffusionPipeline.Initialize(TinyConfigs(_dir), _backend, seed: 9);
        foreach (int height in new[] { 33, 34 })   // 34 is a multiple of the VAE's 2, but its latent (17) does not halve
            Assert.That(() => TextToImage.Generate(p, new GenerationRequest("a dog", Height: height)), Throws.ArgumentException.With.Message
                .EqualTo($"text to image: 32×{height} pixels; this model draws positive multiples of 4 px (the VAE's factor 2 × the UNet's 2× downsampling)"));
        Assert.That(TextToImage.Generate(p, new GenerationRequest("a dog", NumImages: 1, Steps: 1, Height: 36)).Height, Is.EqualTo(36));
    }
}
