// `dreambooth train` and `train-sr` end to end on tiny random pipelines and real dog photos: outputs, diffusers' checkpoint
// rules, bit-identical resume, class-image top-up, the SR cascade, and clear errors for bad input before any training.
using System.Text.Json.Nodes;
using DreamBooth.Models.Formats;
using DreamBooth.Tests.Models;
using DreamBooth.Trainer;
using SixLabors.ImageSharp;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class TrainTests
{
    string _root = null!, _base = null!, _sr = null!, _dog = null!;

    [OneTimeSetUp]
    public void CreateModels()
    {
        _root = ModelData.TempFolder();
        _base = Path.Combine(_root, "base");
        _sr = Path.Combine(_root, "sr");
        _dog = ModelData.Path("dog");
        Assert.That(Dreambooth("init-model", "--config", ModelData.Path("tiny-sd"), "--output", _base, "--seed", "0", "--device", "cpu").Exit, Is.Zero);
        Assert.That(Dreambooth("init-model", "--config", ModelData.Path("tiny-sr"), "--output", _sr, "--seed", "0", "--device", "cpu").Exit, Is.Zero);
    }

    [OneTimeTearDown]
    public void Delete() => Directory.Delete(_root, true);

    /// <summary>Runs the command line in this process (the same table as the dreambooth binary); exit code and stderr.</summary>
    internal static (int Exit, string Error) Dreambooth(params string[] args)
    {
        var (error, output) = (new StringWriter(), new StringWriter());
        var (oldError, oldOutput) = (Console.Error, Console.Out);
        Console.SetError(error);
        Console.SetOut(output);
        try { return (Cli.Run(args), error.ToString()); }
        finally { Console.SetError(oldError); Console.SetOut(oldOutput); }
    }

    string Dir(string name) => Path.Combine(_root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>A small diffusers-style command: the tiny pipeline at 32×32, on the cpu tier (batch 4: the four photos).</summary>
    string[] Train(string output, params string[] more) =>
    [
        "train", "--pretrained_model_name_or_path", _base, "--instance_data_dir", _dog, "--instance_prompt", "a photo of sks dog",
        "--output_dir", output, "--seed", "3", "--device", "cpu", "--learning_rate", "1e-3", .. more,
    ];

    string[] WithPrior(string classes, int count = 2) =>
        ["--with_prior_preservation", "--class_data_dir", classes, "--class_prompt", "a photo of dog", "--num_class_images", count.ToString(),
         "--class_inference_steps", "2", "--sample_batch_size", "2"];

    static void Succeeds((int Exit, string Error) run) => Assert.That(run.Exit, Is.Zero, run.Error);

    static JsonObject[] Log(string output) =>
        File.ReadAllLines(Path.Combine(output, "logs", "train.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();

    static int[] CheckpointSteps(string output) =>
        Directory.GetDirectories(output, "checkpoint-*").Select(d => int.Parse(Path.GetFileName(d)["checkpoint-".Length..])).Order().ToArray();

    static byte[] Weights(string dir, string component = "unet") =>
        File.ReadAllBytes(Path.Combine(dir, component, component == "unet" ? "diffusion_pytorch_model.safetensors" : "model.safetensors"));

    [Test]
    public void TrainWithPriorPreservationWritesCheckpointsLogsValidationAndALoadableModel()
    {
        string output = Dir("out"), classes = Dir("classes");
        var run = Dreambooth(Train(output, [.. WithPrior(classes), "--max_train_steps", "4", "--checkpointing_steps=2",
            "--validation_prompt", "a sks dog", "--validation_steps", "2", "--num_validation_images", "2", "--report_to=tensorboard", "--allow-tf32"]));
        Succeeds(run);
        Assert.That(run.Error, Does.Contain("--report_to is ignored").And.Contain("--allow_tf32 has no effect on the cpu tier"));
        Assert.That(Directory.GetFiles(classes).Select(Path.GetFileName), Has.All.Match(@"^\d+-[0-9a-f]{12}\.png$"));
        Assert.That(Directory.GetFiles(classes), Has.Length.EqualTo(2));

        var log = Log(output);
        Assert.That(log.Select(l => (int)l["step"]!), Is.EqualTo(new[] { 1, 2, 3, 4 }));
        foreach (var l in log)
            foreach (string key in new[] { "loss", "instance_loss", "prior_loss", "lr", "grad_norm", "it_per_s", "memory_mib" })
                Assert.That(double.IsFinite((double)l[key]!), $"{key} at step {l["step"]}");
        Assert.That((double)log[0]["loss"]!, Is.EqualTo((double)log[0]["instance_loss"]! + (double)log[0]["prior_loss"]!).Within(1e-5));

        Assert.That(CheckpointSteps(output), Is.EqualTo(new[] { 2, 4 }));
        foreach (string file in new[] { "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "optimizer.safetensors", "trainer_state.json" })
            Assert.That(File.Exists(Path.Combine(output, "checkpoint-2", file)), file);
        foreach (string file in new[] { "logs/loss.png", "validation/step-2.png", "validation/step-4.png", "model_index.json",
                     "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                     "tokenizer/vocab.json", "scheduler/scheduler_config.json" })
            Assert.That(File.Exists(Path.Combine(output, file)), file);
        Assert.That(Weights(Path.Combine(output, "checkpoint-2")), Is.Not.EqualTo(Weights(_base)), "the UNet trained");

        Succeeds(Dreambooth("inspect", output));
        Succeeds(Dreambooth("sample", "--model", output, "--prompt", "a sks dog", "--num-images", "1", "--steps", "2", "--output",
            Path.Combine(output, "samples"), "--device", "cpu"));
        Succeeds(Dreambooth("sample", "--model", _base, "--unet", Path.Combine(output, "checkpoint-2", "unet"), "--prompt", "a sks dog",
            "--num-images", "1", "--steps", "2", "--output", Path.Combine(output, "samples-2"), "--device", "cpu"));
        Assert.That(File.Exists(Path.Combine(output, "samples-2", "grid.png")));
    }

    [Test]
    public void SaveSingleFileWritesTheLdmCheckpointBesideTheFolderAndNeverOverwritesOne()
    {
        string output = Dir("single");
        Succeeds(Dreambooth(Train(output, "--max_train_steps", "1", "--save_single_file")));
        string single = output + ".safetensors";
        using (var file = SafetensorsFile.Open(single))
        {
            Assert.That(file.Tensors.Count(t => t.Name.StartsWith(SingleFile.UNetPrefix)), Is.GreaterThan(0));
            var unet = SafetensorsFile.Open(Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors"));
            using (unet)
                Assert.That(file.ReadFloats("model.diffusion_model.out.2.bias"), Is.EqualTo(unet.ReadFloats("conv_out.bias")), "the trained weights");
        }
        string other = Dir("other");
        File.Copy(single, other + ".safetensors");
        var refused = Dreambooth(Train(other, "--max_train_steps", "1", "--save_single_file"));
        Assert.That(refused.Exit, Is.EqualTo(1));
        Assert.That(refused.Error, Does.EndWith($"dreambooth train: --save_single_file: {other}.safetensors already exists; choose another --output_dir or move that file\n"));
        Assert.That(Directory.Exists(Path.Combine(other, "logs")), Is.False, "refused before any work");
    }

    /// <summary>A single file as --pretrained_model_name_or_path: read with the configs of --single_file_config (the tiny
    /// pipeline's here; configs/sd15 by default), trained, and the unpacked copy removed. A file of another architecture
    /// is refused with the keys that do not fit, by component.</summary>
    [Test]
    public void TrainAndSampleFromASingleFileCheckpoint()
    {
        string single = Path.Combine(_root, "tiny-single.safetensors"), output = Dir("from-single"), temp = Path.GetTempPath();
        Succeeds(Dreambooth("convert", "--from", _base, "--to", single));
        var before = Directory.GetDirectories(temp, "dreambooth-single-file-*").Length;
        var run = Dreambooth([.. Train(output, "--max_train_steps", "1").Select(a => a == _base ? single : a), "--single_file_config", _base]);
        Succeeds(run);
        Assert.That(run.Error, Does.Contain($"--pretrained_model_name_or_path {single}: read ").And.Contain("tensors of a single-file checkpoint"));
        Assert.That(Weights(output), Is.Not.EqualTo(Weights(_base)), "the UNet trained");
        Assert.That(File.ReadAllText(Path.Combine(output, "model_index.json")), Is.EqualTo(File.ReadAllText(Path.Combine(_base, "model_index.json"))));
        Assert.That(Directory.GetDirectories(temp, "dreambooth-single-file-*"), Has.Length.EqualTo(before), "the unpacked copy is removed");

        Assert.That(DreamBooth.Trainer.ModelSource.DefaultConfig, Is.Not.Null, "configs/sd15 is copied beside the binary");
        var other = Dreambooth("sample", "--model", single, "--prompt", "a dog", "--output", Path.Combine(_root, "s-single"), "--device", "cpu");
        Assert.That(other.Exit, Is.EqualTo(1));
        Assert.That(other.Error, Does.Contain($"{single}: not a single-file checkpoint of ").And.Contain("sd15's models; unet:"));
    }

    [Test]
    public void CheckpointLimitsAndResumeFollowDiffusers()
    {
        string limited = Dir("limited");
        Succeeds(Dreambooth(Train(limited, "--max_train_steps", "6", "--checkpointing_steps", "2", "--checkpoints_total_limit", "2")));
        Assert.That(CheckpointSteps(limited), Is.EqualTo(new[] { 4, 6 }), "a limit of 2 over 6 steps");

        string resumed = Dir("resumed");
        Succeeds(Dreambooth(Train(resumed, "--max_train_steps", "4", "--checkpointing_steps", "2")));
        Assert.That(CheckpointSteps(resumed), Is.EqualTo(new[] { 2, 4 }));
        var again = Dreambooth(Train(resumed, "--max_train_steps", "6", "--checkpointing_steps", "2"));
        Assert.That(again.Exit, Is.Not.Zero, "a second run into the same folder without resume is refused");
        Assert.That(again.Error, Does.Contain("--resume_from_checkpoint latest"));
        Succeeds(Dreambooth(Train(resumed, "--max_train_steps", "6", "--checkpointing_steps", "2", "--resume_from_checkpoint", "checkpoint-4")));
        Assert.That(CheckpointSteps(resumed), Is.EqualTo(new[] { 2, 4, 6 }), "resume from checkpoint-4 to step 6 gives checkpoint-6");
        Assert.That(Log(resumed).Select(l => (int)l["step"]!), Is.EqualTo(new[] { 1, 2, 3, 4, 5, 6 }));

        string fresh = Dir("fresh");
        var latest = Dreambooth(Train(fresh, "--max_train_steps", "1", "--resume_from_checkpoint", "latest"));
        Succeeds(latest);
        Assert.That(latest.Error, Does.Contain("starting a new run"), "latest with no checkpoint starts fresh, as in diffusers");

        string pruned = Dir("pruned");
        Succeeds(Dreambooth(Train(pruned, "--max_train_steps", "4", "--checkpointing_steps", "2", "--checkpoints_total_limit", "2")));
        Succeeds(Dreambooth(Train(pruned, "--max_train_steps", "8", "--checkpointing_steps", "2", "--checkpoints_total_limit", "2",
            "--resume_from_checkpoint", "latest")));
        Assert.That(CheckpointSteps(pruned), Is.EqualTo(new[] { 6, 8 }), "resume at 4 to step 8 with a limit of 2");
    }

    /// <summary>Every source of state at once: prior preservation, accumulation over an odd epoch, random crops and flips, a
    /// warm-up schedule, offset noise, min-SNR, and the text encoder in the optimizer.</summary>
    [Test]
    public void AResumedRunEndsBitIdenticalToAnUninterruptedOne()
    {
        string classes = Dir("classes"), straight = Dir("straight"), stopped = Dir("stopped");
        string[] options = [.. WithPrior(classes), "--max_train_steps", "6", "--checkpointing_steps", "3", "--gradient_accumulation_steps", "2",
            "--train_batch_size", "3", "--random_flip", "--lr_scheduler", "linear", "--lr_warmup_steps", "2", "--offset_noise", "--snr_gamma", "5",
            "--train_text_encoder", "--resolution", "32"];
        Succeeds(Dreambooth(Train(straight, options)));

        CopyCheckpoint(straight, stopped, "checkpoint-3");   // a run stopped right after its checkpoint at step 3
        Succeeds(Dreambooth(Train(stopped, [.. options, "--resume_from_checkpoint", "latest"])));

        Assert.That(Weights(stopped), Is.EqualTo(Weights(straight)), "unet");
        Assert.That(Weights(stopped, "text_encoder"), Is.EqualTo(Weights(straight, "text_encoder")), "text encoder");
        Assert.That(Log(stopped).Select(l => (double)l["loss"]!), Is.EqualTo(Log(straight).Skip(3).Select(l => (double)l["loss"]!)));
        Assert.That(Weights(straight, "text_encoder"), Is.Not.EqualTo(Weights(_base, "text_encoder")), "the text encoder trained");
    }

    /// <summary>The output folder of a run stopped right after writing this checkpoint.</summary>
    static void CopyCheckpoint(string from, string to, string checkpoint)
    {
        foreach (string file in Directory.GetFiles(Path.Combine(from, checkpoint), "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, checkpoint, Path.GetRelativePath(Path.Combine(from, checkpoint), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [Test]
    public void EightBitAdamCheckpointsItsCodesAndResumesBitIdentical()
    {
        string straight = Dir("straight"), stopped = Dir("stopped"), wrong = Dir("wrong");
        string[] options = ["--use_8bit_adam", "--max_train_steps", "4", "--checkpointing_steps", "2", "--resolution", "32"];
        var run = Dreambooth(Train(straight, options));
        Succeeds(run);
        Assert.That(run.Error, Does.Match(@"optimizer state \d+\.\d MiB"));
        using (var file = SafetensorsFile.Open(Path.Combine(straight, "checkpoint-2", "optimizer.safetensors")))
        {
            Assert.That(file["state1"].DType, Is.EqualTo(SafetensorsDType.U8), "first moment codes");
            Assert.That(file["absmax2"].ElementCount, Is.EqualTo(file["absmax1"].ElementCount)
                .And.AtLeast((file["state2"].ElementCount + 255) / 256), "an absmax per block of 256, a block never spanning two tensors");
            Assert.That(file.Contains("exp_avg"), "small tensors keep f32 moments");
        }

        CopyCheckpoint(straight, stopped, "checkpoint-2");
        Succeeds(Dreambooth(Train(stopped, [.. options, "--resume_from_checkpoint", "latest"])));
        Assert.That(Weights(stopped), Is.EqualTo(Weights(straight)), "resumed from step 2");

        CopyCheckpoint(straight, wrong, "checkpoint-2");
        var (exit, error) = Dreambooth(Train(wrong, ["--max_train_steps", "4", "--resolution", "32", "--resume_from_checkpoint", "latest"]));
        Assert.That(exit, Is.Not.Zero);
        Assert.That(error, Does.Contain("optimizer.safetensors").And.Contain("--use_8bit_adam"), "resumed without --use_8bit_adam");
    }

    [Test]
    public void GradientCheckpointingTrainsTheSameWeights()
    {
        string plain = Dir("plain"), checkpointed = Dir("checkpointed");
        string[] options = ["--max_train_steps", "2", "--train_text_encoder", "--checkpointing_steps", "2"];
        Succeeds(Dreambooth(Train(plain, options)));
        Succeeds(Dreambooth(Train(checkpointed, [.. options, "--gradient_checkpointing"])));
        Assert.That(Weights(checkpointed), Is.EqualTo(Weights(plain)));
        Assert.That(Weights(checkpointed, "text_encoder"), Is.EqualTo(Weights(plain, "text_encoder")));
        Succeeds(Dreambooth("sample", "--model", _base, "--text_encoder", Path.Combine(plain, "checkpoint-2", "text_encoder"), "--unet",
            Path.Combine(plain, "checkpoint-2", "unet"), "--prompt", "a photo of sks dog", "--num-images", "1", "--steps", "2",
            "--output", Path.Combine(plain, "samples"), "--device", "cpu"));
    }

    /// <summary>The photos are square, so a centre crop and a random crop cut the same pixels: encoding each image once and
    /// drawing its latent from the cached posterior must then train exactly as encoding every step does.</summary>
    [Test]
    public void CachedLatentsTrainAsEncodingEveryStep()
    {
        string cached = Dir("cached"), encoded = Dir("encoded");
        Succeeds(Dreambooth(Train(cached, "--max_train_steps", "2", "--center_crop", "--random_flip")));
        Succeeds(Dreambooth(Train(encoded, "--max_train_steps", "2", "--random_flip")));
        Assert.That(Weights(cached), Is.EqualTo(Weights(encoded)));
    }

    /// <summary>"a photo of sks dog" (5 tokens) and 30 × "on the beach" (90): the encoder reads 75, so the 20 after the
    /// 23rd "on the beach" and one "on" are dropped, and train says so, as diffusers does.</summary>
    [Test]
    public void AnOverlongPromptTrainsWithAWarningNamingWhatIsDropped()
    {
        string prompt = "a photo of sks dog " + string.Join(" ", Enumerable.Repeat("on the beach", 30));
        var run = Dreambooth("train", "--pretrained_model_name_or_path", _base, "--instance_data_dir", _dog, "--instance_prompt", prompt,
            "--output_dir", Dir("long"), "--seed", "3", "--device", "cpu", "--max_train_steps", "1");
        Succeeds(run);
        Assert.That(run.Error, Does.Contain("warning: --instance_prompt is longer than the 77 tokens the text encoder reads; " +
                                            "this part is dropped: \"the beach on the beach"));
    }

    /// <summary>--detect_anomaly checks every op of a healthy run and changes nothing: the same weights as without it.</summary>
    [Test]
    public void DetectAnomalyTrainsTheSameWeightsOnAHealthyRun()
    {
        string checkedRun = Dir("anomaly"), plain = Dir("plain");
        Succeeds(Dreambooth(Train(checkedRun, "--max_train_steps", "1", "--detect_anomaly")));
        Succeeds(Dreambooth(Train(plain, "--max_train_steps", "1")));
        Assert.That(Weights(checkedRun), Is.EqualTo(Weights(plain)));
    }

    [Test]
    public void ClassImagesAreToppedUpWithoutRegenerating()
    {
        string classes = Dir("classes");
        Succeeds(Dreambooth(Train(Dir("first"), [.. WithPrior(classes), "--max_train_steps", "1"])));
        var first = Directory.GetFiles(classes).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Assert.That(first, Has.Count.EqualTo(2));
        Succeeds(Dreambooth(Train(Dir("second"), [.. WithPrior(classes, count: 3), "--max_train_steps", "1"])));
        var second = Directory.GetFiles(classes);
        Assert.That(second, Has.Length.EqualTo(3));
        foreach (var (file, time) in first) Assert.That(File.GetLastWriteTimeUtc(file), Is.EqualTo(time), $"{file} was kept");
        Assert.That(second.Select(Path.GetFileName), Has.One.StartsWith("2-"));
    }

    [Test]
    public void MixedPrecisionAndSeveralConceptsTrain()
    {
        string concepts = Path.Combine(_root, "concepts.json");
        File.WriteAllText(concepts, $$"""
            [{"instance_prompt": "a photo of sks dog", "instance_data_dir": "{{_dog}}", "class_prompt": "a dog", "class_data_dir": "{{Dir("c1")}}"},
             {"instance_prompt": "a photo of zwx dog", "instance_data_dir": "{{_dog}}", "class_prompt": "a dog", "class_data_dir": "{{Dir("c2")}}"}]
            """);
        string fp16 = Dir("fp16");
        Succeeds(Dreambooth("train", "--pretrained_model_name_or_path", _base, "--concepts_list", concepts, "--with_prior_preservation",
            "--num_class_images", "1", "--class_inference_steps", "2", "--max_train_steps", "2", "--train_batch_size", "2",
            "--mixed_precision", "fp16", "--output_dir", fp16, "--device", "cpu", "--seed", "1"));
        var log = Log(fp16);
        Assert.That(log.Select(l => (double?)l["loss_scale"]), Has.All.Not.Null);
        Assert.That(log.Select(l => (double)l["loss"]!), Has.All.Matches<double>(double.IsFinite));
        string bf16 = Dir("bf16");
        Succeeds(Dreambooth(Train(bf16, "--max_train_steps", "1", "--mixed_precision", "bf16")));
    }

    [Test]
    public void TrainSrFineTunesTheSuperResolutionStageAndTheCascadeSamples()
    {
        string output = Dir("sr-out");
        Succeeds(Dreambooth("train-sr", "--pretrained_model_name_or_path", _sr, "--instance_data_dir", _dog, "--instance_prompt", "a sks dog",
            "--max_train_steps", "2", "--train_batch_size", "2", "--low_res_resolution", "32", "--noise_level", "1e-5", "--output_dir", output,
            "--checkpointing_steps", "1", "--validation_prompt", "a sks dog", "--validation_steps", "2", "--num_validation_images", "2",
            "--device", "cpu", "--seed", "2", "--learning_rate", "1e-3"));
        Assert.That(CheckpointSteps(output), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(File.Exists(Path.Combine(output, "validation", "step-2.png")));
        Assert.That(File.Exists(Path.Combine(output, "low_res_scheduler", "scheduler_config.json")));
        Assert.That(Weights(output), Is.Not.EqualTo(Weights(_sr)));

        string samples = Path.Combine(output, "cascade");
        Succeeds(Dreambooth("sample", "--model", _base, "--sr_model", output, "--prompt", "a sks dog", "--num-images", "2", "--steps", "2",
            "--output", samples, "--device", "cpu"));
        using var image = SixLabors.ImageSharp.Image.Load(Path.Combine(samples, "000.png"));
        Assert.That((image.Width, image.Height), Is.EqualTo((64, 64)), "base 32×32 upscaled by the 64×64 stage");

        var wrong = Dreambooth("train-sr", "--pretrained_model_name_or_path", _base, "--instance_data_dir", _dog, "--instance_prompt", "x",
            "--output_dir", Dir("wrong"), "--device", "cpu");
        Assert.That(wrong.Error, Does.Contain("not a super-resolution stage"));
    }

    [Test]
    public void BadInputIsAClearErrorBeforeAnyTraining()
    {
        string empty = Dir("empty"), notImage = Dir("not-image"), truncated = Dir("truncated"), file = Path.Combine(_root, "a-file");
        Directory.CreateDirectory(empty);
        Directory.CreateDirectory(notImage);
        File.WriteAllText(Path.Combine(notImage, "photo.jpg"), "this is text, not a JPEG");
        Directory.CreateDirectory(truncated);
        var jpeg = File.ReadAllBytes(Path.Combine(_dog, "00.jpg"));
        File.WriteAllBytes(Path.Combine(truncated, "cut.jpg"), jpeg[..(jpeg.Length / 2)]);
        File.WriteAllText(file, "");
        string output = Dir("never");
        string[] Args(string instances, string model, string outputDir, params string[] more) =>
            ["train", "--pretrained_model_name_or_path", model, "--instance_data_dir", instances, "--instance_prompt", "a sks dog",
             "--output_dir", outputDir, "--device", "cpu", .. more];

        foreach (var (args, expected) in new (string[], string)[]
                 {
                     (Args(empty, _base, output), "no images"),
                     (Args(notImage, _base, output), "photo.jpg: not a readable image"),
                     (Args(truncated, _base, output), "cut.jpg: truncated JPEG"),
                     (Args(_dog, Path.Combine(_root, "absent"), output), "not a diffusers model folder"),
                     (Args(_dog, "runwayml/stable-diffusion-v1-5", output), "download the model"),
                     (Args(_dog, _base, Path.Combine(file, "out")), "--output_dir"),
                     (Args(_dog, _base, output, "--with_prior_preservation", "--class_data_dir", Dir("c")), "--class_prompt"),
                     (Args(_dog, _base, output, "--learning-rat", "1e-4"), "did you mean --learning_rate"),
                     (Args(_dog, _base, output, "--resolution", "8192", "--train_batch_size", "64"), "lower --train_batch_size or --resolution"),
                 })
        {
            var (exit, error) = Dreambooth(args);
            Assert.That(exit, Is.EqualTo(1), string.Join(' ', args));
            Assert.That(error, Does.Contain(expected).And.Not.Contain("Exception").And.Not.Contain("\n   at "), string.Join(' ', args));
            Assert.That(Directory.Exists(Path.Combine(output, "logs")), Is.False, "no training started");
        }
    }

    [Test]
    public void ImagesAreOrientedConvertedToRgbAndResized()
    {
        foreach (string name in new[] { "grey.png", "alpha.png", "cmyk.jpg", "dog.webp", "dog.bmp" })
        {
            var image = ImageFolder.Load(ModelData.Path("images", name), 32);
            Assert.That((image.Height, image.Width, image.Pixels.Length), Is.EqualTo((32, 32, 3 * 32 * 32)), name);
            Assert.That(image.Pixels, Has.All.InRange(-1f, 1f), name);
        }
        var grey = ImageFolder.Load(ModelData.Path("images", "grey.png"), 32).Pixels;
        Assert.That(grey.AsSpan(0, 1024).SequenceEqual(grey.AsSpan(1024, 1024)), "grey becomes three equal channels");

        // 8 wide × 4 tall, red left half, stored with EXIF orientation 6 ("rotate 90° clockwise to display")
        string path = Path.Combine(_root, "rotated.jpg");
        using (var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(8, 4))
        {
            for (int y = 0; y < 4; y++)
            for (int x = 0; x < 8; x++)
                image[x, y] = x < 4 ? new(255, 0, 0) : new(0, 0, 255);
            image.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
            image.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6);
            image.SaveAsJpeg(path, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 100 });
        }
        var rotated = ImageFolder.Load(path, 4);
        Assert.That((rotated.Height, rotated.Width), Is.EqualTo((8, 4)), "displayed upright: 4 wide, 8 tall");
        Assert.That(rotated.Pixels[0], Is.GreaterThan(0.5f), "the red half is on top");
        Assert.That(rotated.Pixels[7 * 4], Is.LessThan(-0.5f), "blue at the bottom");
    }
}
