// The toy world: the analyser reads renders back into their attributes, and the vocabulary spells every caption word as one token.
using DreamBooth.Models.Tokenizer;
using DreamBooth.Tests.Models;
using DreamBooth.Trainer.World;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

public class ToyWorldTests
{
    /// <summary>Per attribute, the share of 300 random scenes the analyser reads right: the bar is 99 % on clean renders.
    /// With Gaussian noise of σ = 0.05 (in [−1, 1] units) the shares are reported, not asserted.</summary>
    [TestCase(32)]
    [TestCase(64)]
    public void TheAnalyserRecoversWhatTheRendererDrew(int size)
    {
        const int Scenes = 300;
        foreach (double noise in new[] { 0.0, 0.05 })
        {
            int background = 0, colour = 0, shape = 0, position = 0;
            var rng = new Random(5);
            for (int i = 0; i < Scenes; i++)
            {
                var scene = ToyWorld.Sample(7, i);
                var image = ToyWorld.Render(scene, size);
                if (noise > 0)
                    for (int k = 0; k < image.Length; k++)
                        image[k] += (float)(noise * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                var a = ToyAnalyser.Analyse(image, size);
                background += a.Background == scene.Background ? 1 : 0;
                colour += a.Colour == scene.Colour ? 1 : 0;
                shape += a.Shape == scene.Shape ? 1 : 0;
                position += Math.Abs(a.X - scene.X) < 0.03 && Math.Abs(a.Y - scene.Y) < 0.03 ? 1 : 0;
            }
            TestContext.Out.WriteLine($"{size}×{size}, noise σ {noise}: background {100.0 * background / Scenes:F1} %, colour " +
                                      $"{100.0 * colour / Scenes:F1} %, shape {100.0 * shape / Scenes:F1} %, position {100.0 * position / Scenes:F1} %");
            if (noise > 0) continue;
            Assert.That(background, Is.GreaterThanOrEqualTo(0.99 * Scenes), "background");
            Assert.That(colour, Is.GreaterThanOrEqualTo(0.99 * Scenes), "object colour");
            Assert.That(shape, Is.GreaterThanOrEqualTo(0.99 * Scenes), "shape");
            Assert.That(position, Is.GreaterThanOrEqualTo(0.99 * Scenes), "position");
        }
    }

    [Test]
    public void ScenesCoverTheWorldAndStayInsideTheImage()
    {
        var scenes = Enumerable.Range(0, 2000).Select(i => ToyWorld.Sample(3, i)).ToList();
        Assert.That(scenes.Select(s => s.Shape).Distinct().Count(), Is.EqualTo(ToyWorld.Shapes.Length));
        Assert.That(scenes.Select(s => s.Background).Distinct().Count(), Is.EqualTo(ToyWorld.Palette.Length));
        Assert.That(scenes, Has.All.Matches<Scene>(s => s.Colour != s.Background));
        Assert.That(scenes, Has.All.Matches<Scene>(s => s.X - s.Radius > 0 && s.X + s.Radius < 1 && s.Y - s.Radius > 0 && s.Y + s.Radius < 1));
        Assert.That(ToyWorld.Sample(3, 17), Is.EqualTo(scenes[17]), "a scene is a function of (seed, index)");
    }

    [Test]
    public void EveryCaptionWordAndIdentifierIsOneToken()
    {
        string dir = ModelData.TempFolder();
        try
        {
            ToyVocabulary.Write(dir);
            var tokenizer = ClipTokenizer.Load(dir);
            Assert.That(tokenizer.MaxLength, Is.EqualTo(ToyVocabulary.MaxLength));
            foreach (string word in ToyWorld.Words())
            {
                var ids = tokenizer.Encode(word);
                Assert.That(ids[2], Is.EqualTo(tokenizer.EosId), $"'{word}' is one token");
                Assert.That(ids[1], Is.Not.EqualTo(tokenizer.UnkId), word);
            }
            for (int form = 0; form < 5; form++)
                foreach (var scene in Enumerable.Range(0, 50).Select(i => ToyWorld.Sample(1, i)))
                {
                    string caption = ToyWorld.Caption(scene, form);
                    var ids = tokenizer.Encode(caption);
                    int words = caption.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
                    Assert.That(ids[words + 1], Is.EqualTo(tokenizer.EosId), caption);
                    Assert.That(ids.Skip(1).Take(words), Has.None.EqualTo(tokenizer.UnkId), caption);
                }
            Assert.That(Enumerable.Range(0, 1000).Select(i => ToyWorld.TrainingCaption(ToyWorld.Sample(1, i), i / 1000.0)),
                Has.None.Contains("sks").And.None.Contains("zwx"), "identifiers never appear in pretraining captions");
        }
        finally { Directory.Delete(dir, true); }
    }
}

/// <summary>`pretrain` on the toy world with the one training loop: a few steps of each stage, and an exact resume.</summary>
public class PretrainTests
{
    static (int Exit, string Error) Dreambooth(params string[] args) => TrainTests.Dreambooth(args);

    [Test]
    public void PretrainTrainsBothStagesAndResumesBitIdentically()
    {
        string root = ModelData.TempFolder();
        try
        {
            string straight = Path.Combine(root, "straight"), stopped = Path.Combine(root, "stopped");
            string[] Args(string output, int quality, params string[] more) =>
                ["pretrain", "--world", "toy", "--output", output, "--base_steps", "4", "--sr_steps", "2", "--checkpointing_steps", "2",
                 "--validation_steps", "4", "--train_batch_size", "4", "--lr_warmup_steps", "1", "--quality_prompts", quality.ToString(), "--device", "cpu", .. more];
            var run = Dreambooth(Args(straight, 2));
            Assert.That(run.Exit, Is.Zero, run.Error);
            foreach (string file in new[] { "base/model_index.json", "base/unet/diffusion_pytorch_model.safetensors", "base/tokenizer/vocab.json",
                         "base/logs/loss.png", "base/validation/step-4.png", "sr/low_res_scheduler/scheduler_config.json", "sr/checkpoint-2/unet/config.json",
                         "quality.md", "quality.json" })
                Assert.That(File.Exists(Path.Combine(straight, file)), file);

            string from = Path.Combine(straight, "base", "checkpoint-2"), to = Path.Combine(stopped, "base", "checkpoint-2");
            foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            {
                string target = Path.Combine(to, Path.GetRelativePath(from, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            run = Dreambooth(Args(stopped, 0, "--stage", "base", "--resume_from_checkpoint", "latest"));
            Assert.That(run.Exit, Is.Zero, run.Error);
            foreach (string weights in new[] { "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
                Assert.That(File.ReadAllBytes(Path.Combine(stopped, "base", weights)), Is.EqualTo(File.ReadAllBytes(Path.Combine(straight, "base", weights))), weights);

            // A finished run is measured again, here at another guidance scale, without training.
            var again = Dreambooth(Args(straight, 2, "--stage", "base", "--guidance_scale", "5"));
            Assert.That(again.Exit, Is.Zero, again.Error);
            Assert.That(again.Error, Does.Contain("already trained"));
            Assert.That(File.ReadAllText(Path.Combine(straight, "quality.md")), Does.Contain("guidance 5.00").And.Contain("| prompted shape ↓, analysed as →"));
        }
        finally { Directory.Delete(root, true); }
    }
}

/// <summary>The committed embedded cascade (models/toy): it loads, and its samples are what the prompts ask for.</summary>
public class CommittedToyModelTests
{
    [Test]
    public void TheBaseModelDrawsWhatIsPromptedAndTheSrStageUpscalesIt()
    {
        using var backend = DreamBooth.Kernels.Backends.Create("cpu");
        using var baseModel = DreamBooth.Models.Pipeline.StableDiffusionPipeline.Load(ModelData.Path("models", "toy", "base"), backend);
        using var sr = DreamBooth.Models.Pipeline.StableDiffusionPipeline.Load(ModelData.Path("models", "toy", "sr"), backend);
        const int Prompts = 8;
        int background = 0, colour = 0, shape = 0;
        var first = default(DreamBooth.Models.Pipeline.GeneratedImages);
        for (int i = 0; i < Prompts; i++)
        {
            var scene = ToyWorld.Sample(4321, i);
            var images = DreamBooth.Models.Pipeline.TextToImage.Generate(baseModel,
                new DreamBooth.Models.Pipeline.GenerationRequest(ToyWorld.Caption(scene, 0), "", 1, 25, 3, Seed: (ulong)i));
            first ??= images;
            var a = ToyAnalyser.Analyse(Array.ConvertAll(images.Pixels, v => v * 2 - 1), images.Height);
            background += a.Background == scene.Background ? 1 : 0;
            colour += a.Colour == scene.Colour ? 1 : 0;
            shape += a.Shape == scene.Shape ? 1 : 0;
        }
        TestContext.Out.WriteLine($"{Prompts} prompts: background {background}, colour {colour}, shape {shape} right");
        // models/toy/README.md gives the rates over 300 prompts (background 100 %, colour 100 %, shape 95 %). These 8 prompts
        // are others, and an AVX2 machine's samples differ in their last bits from the AVX-512 one's that measured them:
        // allow one miss of each colour and two shapes (at 95 %, two or more misses in 8 happen 6 % of the time).
        Assert.That(background, Is.GreaterThanOrEqualTo(7), "background");
        Assert.That(colour, Is.GreaterThanOrEqualTo(7), "object colour");
        Assert.That(shape, Is.GreaterThanOrEqualTo(6), "shape");
        var high = DreamBooth.Models.Pipeline.Cascade.Upscale(sr, new DreamBooth.Models.Pipeline.GenerationRequest("", "", 1, 25, 3, Seed: 1), first!, 1e-5);
        Assert.That((high.Height, high.Width), Is.EqualTo((ToyModels.SrSize, ToyModels.SrSize)));
    }
}

/// <summary>`eval` on the committed cascade and the toy subject: the tables are written, and bad input is refused first.</summary>
public class EvalCommandTests
{
    [Test]
    public void EvalWritesTheTablesForAModelAndAnSrStage()
    {
        string root = ModelData.TempFolder();
        try
        {
            string subject = Path.Combine(root, "subject"), output = Path.Combine(root, "eval"), lora = Path.Combine(root, "lora.safetensors");
            ToySubject.WriteInstances(subject, ToyModels.SrSize);
            using (var backend = DreamBooth.Kernels.Backends.Create("cpu"))
            using (var model = DreamBooth.Models.Pipeline.StableDiffusionPipeline.Load(ModelData.Path("models", "toy", "base"), backend))
            {
                var adapters = DreamBooth.Models.Formats.LoraWeights.Attach(model, rank: 2, alpha: 2, textEncoder: false);
                using var store = ModelData.Initialized(backend, adapters, seed: 1);
                DreamBooth.Models.Formats.LoraFile.Save(lora, adapters, DreamBooth.Models.Formats.LoraLayout.Kohya);
            }
            string[] args = ["eval", "--model", ModelData.Path("models", "toy", "base"), "--subject", subject, "--sr_model", ModelData.Path("models", "toy", "sr"),
                             "--lora", lora, "--samples", "2", "--output", output, "--device", "cpu"];
            var run = TrainTests.Dreambooth(args);
            Assert.That(run.Exit, Is.Zero, run.Error);
            var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement;
            Assert.That(json.GetProperty("rows").GetArrayLength(), Is.EqualTo(3));   // the real images, the model, the model with the LoRA
            Assert.That(json.GetProperty("rows")[2].GetProperty("name").GetString(), Is.EqualTo(lora));
            Assert.That(json.GetProperty("rows")[0].GetProperty("subject_fidelity").GetDouble(), Is.InRange(0.0, 1.0));
            Assert.That(json.GetProperty("sr").GetArrayLength(), Is.EqualTo(1));
            Assert.That(File.ReadAllText(Path.Combine(output, "metrics.md")), Does.Contain("PRES"));

            var again = TrainTests.Dreambooth(args);   // the tables are there now: not overwritten
            Assert.That((again.Exit, again.Error), Is.EqualTo((1, $"dreambooth eval: --output {output} already holds metrics.md; choose another folder or remove it\n")));
            var missing = TrainTests.Dreambooth("eval", "--model", root, "--subject", subject, "--device", "cpu");
            Assert.That((missing.Exit, missing.Error), Is.EqualTo((1, $"dreambooth eval: {root}: no model_index.json; not a pipeline folder\n")));
            var noLora = TrainTests.Dreambooth("eval", "--model", ModelData.Path("models", "toy", "base"), "--subject", subject, "--lora", root, "--device", "cpu");
            Assert.That(noLora.Error, Does.StartWith($"dreambooth eval: {root}: no LoRA file there"));
        }
        finally { Directory.Delete(root, true); }
    }
}

/// <summary>`demo` end to end at a few steps: every run, the grid, the tables and the logs are written.</summary>
public class DemoTests
{
    [Test]
    public void TheDemoRunsEveryStageAndWritesItsResults()
    {
        string root = ModelData.TempFolder();
        try
        {
            string output = Path.Combine(root, "demo");
            var run = TrainTests.Dreambooth("demo", "--output", output, "--base", ModelData.Path("models", "toy", "base"), "--sr", ModelData.Path("models", "toy", "sr"),
                "--steps", "2", "--sr_steps", "2", "--samples", "2", "--device", "cpu");
            Assert.That(run.Exit, Is.Zero, run.Error);
            foreach (string file in new[] { "grid.png", "metrics.md", "metrics.json", "subject/00.png", "runs/prior/logs/loss.png", "runs/no-prior/unet/config.json",
                         "runs/sr-1e-3/logs/train.jsonl", "runs/sr-1e-5/unet/diffusion_pytorch_model.safetensors", "runs/lora/pytorch_lora_weights.safetensors" })
                Assert.That(File.Exists(Path.Combine(output, file)), file);
            var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement;
            Assert.That((json.GetProperty("rows").GetArrayLength(), json.GetProperty("sr").GetArrayLength()), Is.EqualTo((5, 3)));
            var costs = json.GetProperty("costs").EnumerateArray().ToList();   // full fine-tuning and LoRA: what each trained and cost
            Assert.That(costs.Select(c => c.GetProperty("name").GetString()), Is.EqualTo(new[] { "full fine-tuning", "LoRA rank 4" }));
            Assert.That(costs[1].GetProperty("trained_parameters").GetInt64(), Is.LessThan(costs[0].GetProperty("trained_parameters").GetInt64() / 50));
        }
        finally { Directory.Delete(root, true); }
    }
}

/// <summary>The full demo, as the README's first command runs it: the paper's directions must show in its tables.</summary>
public class FullDemoTests
{
    [Test, Category("Slow")]
    public void TheDemoShowsDreamBoothWorkingAndPriorPreservationDoingWhatThePaperSays()
    {
        string root = ModelData.TempFolder();
        try
        {
            string output = Path.Combine(root, "demo");
            var run = TrainTests.Dreambooth("demo", "--output", output, "--base", ModelData.Path("models", "toy", "base"), "--sr", ModelData.Path("models", "toy", "sr"),
                "--device", "cpu");
            Assert.That(run.Exit, Is.Zero, run.Error);
            TestContext.Out.WriteLine(File.ReadAllText(Path.Combine(output, "metrics.md")));
            var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement;
            var rows = json.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!);
            double Metric(string row, string metric) => rows[row].GetProperty(metric).GetDouble();
            const string Base = "base, before DreamBooth", NoPrior = "DreamBooth without prior preservation", Prior = "DreamBooth with prior preservation";
            Assert.That(Metric(NoPrior, "subject_fidelity"), Is.GreaterThan(Metric(Base, "subject_fidelity")), "DreamBooth learns the subject");
            Assert.That(Metric(Prior, "subject_fidelity"), Is.GreaterThan(Metric(Base, "subject_fidelity")), "so it does with the prior term");
            Assert.That(Metric(Prior, "pres"), Is.LessThan(Metric(NoPrior, "pres")), "prior preservation lowers PRES");
            // "Keeps DIV": the paper's DIV rose (0.371 → 0.391); allow the prior run to lose no more than 0.02.
            Assert.That(Metric(Prior, "div"), Is.GreaterThan(Metric(NoPrior, "div") - 0.02), "prior preservation keeps DIV");
            var sr = json.GetProperty("sr").EnumerateArray().Select(r => r.GetProperty("subject_fidelity").GetDouble()).ToArray();   // none, 1e-3, 1e-5
            Assert.That(sr[2], Is.GreaterThan(sr[0]), "SR fine-tuned at a low level keeps more detail than none");
            // Not asserted: the low level beating the default one. Over seeds 0 and 1 the two were equal within 0.003: the
            // toy subject's stripes are not in the 32×32 input at all, so the level changes nothing the SR stage learns
            // (README "What the demo shows" has the reason and what was tried).
            var lora = rows["DreamBooth with prior preservation, LoRA rank 4"];
            Assert.That(lora.GetProperty("subject_fidelity").GetDouble(), Is.GreaterThan(Metric(Base, "subject_fidelity")), "LoRA learns the subject too");
        }
        finally { Directory.Delete(root, true); }
    }
}
