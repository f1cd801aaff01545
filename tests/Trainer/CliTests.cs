// The `dreambooth` command line as a user runs it: help, devices, tokenize, inspect, init-model, sample, and clear errors for bad input.
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class CliTests
{
    static (int Exit, string Output, string Error) Run(params string[] args) => DreamboothProcess.Run(args);

    [Test]
    public void HelpListsTheCommands()
    {
        var (exit, output, _) = Run("--help");
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain("DreamBooth").And.Contain("devices"));
    }

    [Test]
    public void DevicesListsTheHostTiersAndTheCudaStatus()
    {
        var (exit, output, _) = Run("devices");
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain("reference").And.Contain("cpu").And.Contain("cuda"));
    }

    [Test]
    public void AnUnknownCommandFailsWithAMessage()
    {
        var (exit, output, _) = Run("trian");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(output, Does.Contain("trian"));
    }

    [Test]
    public void DevicesSaysWhichBackendAutoOpens()
    {
        var (exit, output, _) = Run("devices");
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain($"--device auto uses: {(Backends.CudaPresent() ? "cuda" : "cpu")}"));
    }

    [TestCase("cpu")]
    [TestCase("reference")]
    public void DeviceOpensTheNamedHostBackend(string device)
    {
        var (exit, output, _) = Run("devices", "--device", device);
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain($"--device {device} uses: {device}"));
    }

    [Test]
    public void DeviceCudaWithoutAGpuIsAOneLineError()
    {
        var (exit, output, error) = Run("devices", "--device", "cuda");
        if (Backends.CudaPresent())
        {
            Assert.That(exit, Is.Zero);
            Assert.That(output, Does.Contain("--device cuda uses: cuda"));
            return;
        }
        Assert.That(exit, Is.Not.Zero);
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
        Assert.That(error, Does.Contain("--device cuda").And.Contain("no CUDA device found").And.Not.Contain("Exception"));
    }

    [Test]
    public void AnUnknownDeviceListsTheChoices()
    {
        var (exit, output, _) = Run("devices", "--device", "gpu");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(output, Does.Contain("gpu").And.Contain("auto").And.Contain("cuda").And.Contain("reference"));
    }

    [Test]
    public void TokenizePrintsTheSeventySevenIds()
    {
        var (exit, output, _) = Run("tokenize", "--tokenizer", DreamBooth.Tests.Models.ModelData.Path("tiny-sd", "tokenizer"), "a photo of sks dog");
        Assert.That(exit, Is.Zero, output);
        Assert.That(output.TrimEnd(), Is.EqualTo("49406 320 1125 539 48136 1929 49407" + string.Concat(Enumerable.Repeat(" 49407", 70))));
    }

    [Test]
    public void TokenizeWithAMissingFolderFailsWithOneLine()
    {
        var (exit, _, error) = Run("tokenize", "--tokenizer", "/no/such/tokenizer", "a dog");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(error.Trim(), Does.Contain("/no/such/tokenizer").And.Not.Contain(" at "));
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public void InitModelThenSampleWritesImagesAndAGrid()
    {
        string dir = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string configs = DreamBooth.Tests.Models.PipelineTests.TinyConfigs(dir);
            string model = Path.Combine(dir, "model"), images = Path.Combine(dir, "images");
            var (exit, output, _) = Run("init-model", "--config", configs, "--output", model, "--seed", "1", "--device", "cpu");
            Assert.That(exit, Is.Zero, output);
            (exit, output, _) = Run("inspect", model);
            Assert.That(exit, Is.Zero, output);
            Assert.That(output, Does.Contain("985,444 parameters").And.Contain("match the config"));
            (exit, output, _) = Run("sample", "--model", model, "--prompt", "a photo of sks dog", "--num-images", "2", "--steps", "3",
                "--scheduler", "ddim", "--seed", "4", "--output", images, "--device", "cpu");
            Assert.That(exit, Is.Zero, output);
            Assert.That(Directory.GetFiles(images).Select(Path.GetFileName), Is.EquivalentTo(new[] { "000.png", "001.png", "grid.png" }));
            Assert.That(output, Does.Contain("it/s"));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>diffusers' README command for DreamBooth with prior preservation, with `accelerate launch
    /// train_dreambooth.py` swapped for our binary and the sizes made tiny; the model holds fp16 weights only.</summary>
    [Test]
    public void APastedDiffusersCommandTrainsIntoALoadableModel()
    {
        string dir = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string model = Path.Combine(dir, "model"), output = Path.Combine(dir, "dreambooth"), classes = Path.Combine(dir, "class");
            var (exit, text, _) = Run("init-model", "--config", DreamBooth.Tests.Models.ModelData.Path("tiny-sd"), "--output", model, "--variant", "fp16");
            Assert.That(exit, Is.Zero, text);
            (exit, text, _) = Run("train",
                $"--pretrained_model_name_or_path={model}", "--variant=fp16",
                $"--instance_data_dir={DreamBooth.Tests.Models.ModelData.Path("dog")}",
                $"--class_data_dir={classes}",
                $"--output_dir={output}",
                "--with_prior_preservation", "--prior_loss_weight=1.0",
                "--instance_prompt=a photo of sks dog",
                "--class_prompt=a photo of dog",
                "--resolution=32", "--center_crop",
                "--train_batch_size=1",
                "--gradient_accumulation_steps=1",
                "--learning_rate=5e-6",
                "--lr_scheduler=constant",
                "--lr_warmup_steps=0",
                "--num_class_images=2", "--class_inference_steps=2",
                "--max_train_steps=2",
                "--push_to_hub");
            Assert.That(exit, Is.Zero, text);
            Assert.That(text, Does.Contain("--push_to_hub is ignored").And.Contain("training: 2/2"));
            (exit, text, _) = Run("inspect", output);
            Assert.That(exit, Is.Zero, text);
            Assert.That(text, Does.Contain("diffusion_pytorch_model.safetensors").And.Not.Contain("fp16"), "the output loads without --variant");
            (exit, text, _) = Run("sample", "--model", output, "--prompt", "a photo of sks dog", "--num-images", "1", "--steps", "2",
                "--output", Path.Combine(dir, "samples"));
            Assert.That(exit, Is.Zero, text);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void InspectOfTheRealConfigsPrintsTheParameterCounts()
    {
        var (exit, output, _) = Run("inspect", DreamBooth.Tests.Models.ModelData.Path("sd15", "unet"));
        Assert.That(exit, Is.Zero, output);
        Assert.That(output, Does.Contain("UNet").And.Contain("859,520,964"));
    }

    [Test]
    public void BadModelInputsAreOneLineErrors()
    {
        string dir = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string broken = Path.Combine(dir, "broken.safetensors");
            File.WriteAllBytes(broken, [1, 2, 3]);
            foreach (var args in new[] { new[] { "inspect", broken }, ["inspect", Path.Combine(dir, "absent")],
                         ["sample", "--model", Path.Combine(dir, "absent"), "--prompt", "x", "--output", Path.Combine(dir, "out")] })
            {
                var (exit, _, error) = Run(args);
                Assert.That(exit, Is.Not.Zero, string.Join(' ', args));
                Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
                Assert.That(error, Does.Contain(dir).And.Not.Contain("Exception"));
            }
            Assert.That(Directory.Exists(Path.Combine(dir, "out")), Is.False, "a failed sample leaves no output folder");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void BadSampleAndOutputArgumentsAreOneLineErrors()
    {
        string dir = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string configs = DreamBooth.Tests.Models.PipelineTests.TinyConfigs(dir);
            string model = Path.Combine(dir, "model"), images = Path.Combine(dir, "images"), file = Path.Combine(dir, "file");
            File.WriteAllText(file, "");
            var (exit, output, _) = Run("init-model", "--config", configs, "--output", model, "--device", "cpu");
            Assert.That(exit, Is.Zero, output);
            string[] sample = ["sample", "--model", model, "--prompt", "x", "--num-images", "1", "--device", "cpu"];
            foreach (var (args, expected) in new (string[], string)[]
                     {
                         ([.. sample, "--steps", "2000", "--output", images], "inference steps must be in [1, 1000]"),
                         ([.. sample, "--steps", "2", "--height", "1073741824", "--output", images], "out of memory"),
                         ([.. sample, "--output", file], $"--output {file} is a file, not a folder"),
                         ([.. sample, "--steps", "2", "--height", "34", "--output", images], "34×34 pixels; this model draws positive multiples of 4 px"),
                         ([.. sample, "--output", "/proc/dreambooth-samples"], "--output /proc/dreambooth-samples: cannot write there"),
                         (["eval", "--model", model, "--subject", dir, "--output", "/proc/dreambooth-eval", "--device", "cpu"],
                          "--output /proc/dreambooth-eval: cannot write there"),
                         (["pretrain", "--output", "/proc/dreambooth-pretrain", "--device", "cpu"], "--output /proc/dreambooth-pretrain: cannot write there"),
                         (["demo", "--base", model, "--sr", model, "--output", "/proc/dreambooth-demo", "--device", "cpu"],
                          "--output /proc/dreambooth-demo: cannot write there"),
                         ([.. sample, "--output", configs], $"--output {configs} is not empty; choose an empty folder, or pass --overwrite"),
                         (["init-model", "--config", configs, "--output", model, "--device", "cpu"], $"--output {model} is not empty"),
                         (["init-model", "--config", configs, "--output", file, "--device", "cpu"], $"--output {file} is a file, not a folder"),
                     })
            {
                var (code, _, error) = Run(args);
                Assert.That(code, Is.Not.Zero, string.Join(' ', args));
                Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
                Assert.That(error, Does.Contain(expected).And.Not.Contain("Exception").And.Not.Contain("(Parameter '"));
            }
            Assert.That(Directory.Exists(images), Is.False, "a failed sample leaves no output folder");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>--overwrite: init-model swaps the whole folder (no fp16 files of an earlier seed stay beside the new
    /// weights), and sample replaces an earlier sample's PNGs (no stale 002.png beside a 2-image grid).</summary>
    [Test]
    public void OverwriteReplacesEarlierOutputWithoutLeavingAMix()
    {
        string dir = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string configs = DreamBooth.Tests.Models.PipelineTests.TinyConfigs(dir);
            string model = Path.Combine(dir, "model"), images = Path.Combine(dir, "images");
            var (exit, output, _) = Run("init-model", "--config", configs, "--output", model, "--variant", "fp16", "--device", "cpu");
            Assert.That(exit, Is.Zero, output);
            (exit, output, _) = Run("init-model", "--config", configs, "--output", model, "--seed", "2", "--overwrite", "--device", "cpu");
            Assert.That(exit, Is.Zero, output);
            Assert.That(Directory.GetFiles(model, "*.fp16.safetensors", SearchOption.AllDirectories), Is.Empty);
            Assert.That(Directory.GetFiles(Path.GetDirectoryName(model)!, ".model.*"), Is.Empty, "no temporary folder is left");

            string[] sample = ["sample", "--model", model, "--prompt", "x", "--steps", "2", "--output", images, "--device", "cpu"];
            (exit, output, _) = Run([.. sample, "--num-images", "3"]);
            Assert.That(exit, Is.Zero, output);
            File.WriteAllText(Path.Combine(images, "notes.txt"), "mine");
            (exit, output, _) = Run([.. sample, "--num-images", "2", "--overwrite"]);
            Assert.That(exit, Is.Zero, output);
            Assert.That(Directory.GetFiles(images).Select(Path.GetFileName), Is.EquivalentTo(new[] { "000.png", "001.png", "grid.png", "notes.txt" }));
        }
        finally { Directory.Delete(dir, true); }
    }
}
