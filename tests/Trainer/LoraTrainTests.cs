// `train --use_lora` on the tiny pipeline: adapters only, diffusers' and kohya's files, exact resume, sample --lora, merge-lora.
using DreamBooth.Models.Formats;
using DreamBooth.Tests.Models;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static DreamBooth.Tests.Trainer.TrainTests;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class LoraTrainTests
{
    string _root = null!, _base = null!;

    [OneTimeSetUp]
    public void CreateModel()
    {
        _root = ModelData.TempFolder();
        _base = Path.Combine(_root, "base");
        Assert.That(Dreambooth("init-model", "--config", ModelData.Path("tiny-sd"), "--output", _base, "--seed", "0", "--device", "cpu").Exit, Is.Zero);
    }

    [OneTimeTearDown]
    public void Delete() => Directory.Delete(_root, true);

    string[] Train(string output, params string[] more) =>
    [
        "train", "--pretrained_model_name_or_path", _base, "--instance_data_dir", ModelData.Path("dog"), "--instance_prompt", "a photo of sks dog",
        "--output_dir", output, "--seed", "3", "--device", "cpu", "--use_lora", "--lr_warmup_steps", "0", .. more,
    ];

    static void Succeeds((int Exit, string Error) run) => Assert.That(run.Exit, Is.Zero, run.Error);

    string Sample(string name, params string[] more)
    {
        string output = Path.Combine(_root, name);
        Succeeds(Dreambooth(["sample", "--model", _base, "--prompt", "a photo of sks dog", "--num-images", "1", "--steps", "3", "--output", output,
            "--device", "cpu", .. more]));
        return Path.Combine(output, "grid.png");
    }

    static long Elements(string file)
    {
        using var f = SafetensorsFile.Open(file);
        return f.Tensors.Sum(t => t.ElementCount);
    }

    [Test]
    public void ALoraRunTrainsOnlyAdaptersResumesExactlyAndSamplesFromEveryFileItWrites()
    {
        string straight = Path.Combine(_root, "straight"), stopped = Path.Combine(_root, "stopped");
        string[] options = ["--rank", "2", "--lora_alpha", "4", "--lora_dropout", "0.1", "--train_text_encoder", "--max_train_steps", "4", "--checkpointing_steps", "2",
            "--validation_prompt", "a sks dog", "--validation_steps", "4", "--num_validation_images", "1", "--save_single_file"];
        var run = Dreambooth(Train(straight, options));
        Succeeds(run);
        Assert.That(run.Error, Does.Contain("lr 0.0005 (constant)"), "train_dreambooth_lora.py's default rate");

        // The outputs: diffusers' file, kohya's beside the folder, the checkpoints' adapters; never a whole model.
        string diffusers = Path.Combine(straight, LoraFile.DiffusersName), kohya = straight + ".safetensors";
        string adapters = Path.Combine(straight, "checkpoint-2", "lora", "adapter_model.safetensors");
        Assert.That(File.Exists(Path.Combine(straight, "model_index.json")), Is.False);
        Assert.That(File.Exists(Path.Combine(straight, "validation", "step-4.png")));
        using (var file = SafetensorsFile.Open(diffusers))
        {
            var names = file.Tensors.Select(t => t.Name).ToList();
            Assert.That(names, Has.Some.Match(@"^unet\.(down|up)_blocks\.\d\.attentions\.0\.transformer_blocks\.0\.attn1\.to_q\.lora\.down\.weight$"));
            Assert.That(names, Has.Some.Match(@"^unet\..*\.attn2\.to_out\.0\.lora\.up\.weight$"));
            Assert.That(names, Does.Contain("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight"));
            Assert.That(names, Has.All.Contain("lora"), "diffusers' load_lora_weights refuses keys without \"lora\"");
        }
        using (var file = SafetensorsFile.Open(kohya))
        {
            Assert.That(file.Tensors.Select(t => t.Name), Does.Contain("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"));
            var alpha = file.Tensors.First(t => t.Name.EndsWith(".alpha", StringComparison.Ordinal));
            Assert.That((alpha.Shape, file.ReadFloats(alpha.Name)[0]), Is.EqualTo((Array.Empty<long>(), 4f)));
        }
        // The frozen weights have no optimizer state: AdamW keeps m and v of the adapters alone.
        Assert.That(Elements(Path.Combine(straight, "checkpoint-2", "optimizer.safetensors")), Is.EqualTo(2 * Elements(adapters)));

        Directory.CreateDirectory(Path.Combine(stopped, "checkpoint-2"));   // a run stopped right after its checkpoint at step 2
        foreach (string file in Directory.GetFiles(Path.Combine(straight, "checkpoint-2"), "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(stopped, "checkpoint-2", Path.GetRelativePath(Path.Combine(straight, "checkpoint-2"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        string[] resume = [.. options.Where(o => o != "--save_single_file"), "--resume_from_checkpoint", "latest"];
        var otherAlpha = Dreambooth(Train(stopped, [.. resume.Select((o, i) => i > 0 && resume[i - 1] == "--lora_alpha" ? "8" : o)]));
        Assert.That(otherAlpha.Error, Does.Contain("the checkpoint's adapters are rank 2, alpha 4, dropout 0.1, with the text encoder, this run asks for " +
                                                   "rank 2, alpha 8, dropout 0.1, with the text encoder"));
        Succeeds(Dreambooth(Train(stopped, resume)));
        Assert.That(File.ReadAllBytes(Path.Combine(stopped, LoraFile.DiffusersName)), Is.EqualTo(File.ReadAllBytes(diffusers)));

        // diffusers' file (B × α/r), kohya's (α beside raw B) and the checkpoint's (peft keys, α in the metadata) are one
        // function: α/r = 2 is a power of two, so even the samples' bits agree. The update is not zero.
        byte[] fromDiffusers = File.ReadAllBytes(Sample("s-diffusers", "--lora", straight));
        Assert.That(File.ReadAllBytes(Sample("s-kohya", "--lora", kohya)), Is.EqualTo(fromDiffusers));
        Assert.That(File.ReadAllBytes(Sample("s-checkpoint", "--lora", Path.Combine(straight, "checkpoint-4"))), Is.EqualTo(fromDiffusers));
        Assert.That(File.ReadAllBytes(Sample("s-base")), Is.Not.EqualTo(fromDiffusers));
        Assert.That(File.ReadAllBytes(Sample("s-scale-0", "--lora", straight, "--lora_scale", "0")), Is.EqualTo(File.ReadAllBytes(Sample("s-base-2"))));

        // merge-lora folds W += (α/r)·B·A: the merged model draws what the adapters draw, to rounding.
        string merged = Path.Combine(_root, "merged");
        Succeeds(Dreambooth("merge-lora", "--model", _base, "--lora", diffusers, "--output", merged, "--device", "cpu"));
        Succeeds(Dreambooth("sample", "--model", merged, "--prompt", "a photo of sks dog", "--num-images", "1", "--steps", "3", "--output",
            Path.Combine(_root, "s-merged"), "--device", "cpu"));
        using var a = Image.Load<Rgb24>(Path.Combine(_root, "s-merged", "grid.png"));
        using var b = Image.Load<Rgb24>(Path.Combine(_root, "s-diffusers", "grid.png"));
        int worst = 0;
        for (int y = 0; y < a.Height; y++)
        for (int x = 0; x < a.Width; x++)
            worst = Math.Max(worst, Math.Max(Math.Abs(a[x, y].R - b[x, y].R), Math.Max(Math.Abs(a[x, y].G - b[x, y].G), Math.Abs(a[x, y].B - b[x, y].B))));
        // f32 sums in another order, through 3 denoising steps and the VAE: at most a level or two of 255.
        Assert.That(worst, Is.LessThanOrEqualTo(2));
    }

    /// <summary>Dropout masks come from the step's stream, so a checkpointed block's recompute draws the mask its forward drew.</summary>
    [Test]
    public void DropoutWithGradientCheckpointingTrainsTheSameAdapters()
    {
        string plain = Path.Combine(_root, "dropout-plain"), checkpointed = Path.Combine(_root, "dropout-checkpointed");
        string[] options = ["--lora_dropout", "0.3", "--train_text_encoder", "--max_train_steps", "2"];
        Succeeds(Dreambooth(Train(plain, options)));
        Succeeds(Dreambooth(Train(checkpointed, [.. options, "--gradient_checkpointing"])));
        Assert.That(File.ReadAllBytes(Path.Combine(checkpointed, LoraFile.DiffusersName)), Is.EqualTo(File.ReadAllBytes(Path.Combine(plain, LoraFile.DiffusersName))));
    }

    [Test]
    public void BadLoraInputIsAClearErrorBeforeAnyWork()
    {
        var noLora = Dreambooth(Train(Path.Combine(_root, "no-lora"), "--rank", "8").Where(o => o != "--use_lora").ToArray());
        Assert.That((noLora.Exit, noLora.Error), Is.EqualTo((1, "dreambooth train: --rank, --lora_alpha and --lora_dropout set a LoRA run's adapters; add --use_lora\n")));
        var zero = Dreambooth(Train(Path.Combine(_root, "zero"), "--rank", "0"));
        Assert.That(zero.Error, Does.Contain("--rank must be ≥ 1, got 0"));
        Assert.That(Dreambooth(Train(Path.Combine(_root, "one"), "--lora_dropout", "1")).Error, Does.Contain("--lora_dropout must be in [0, 1), got 1"));

        // A LoRA of another model: keys that name no layer here, grouped by component, and nothing is drawn.
        string foreign = Path.Combine(_root, "foreign.safetensors");
        SafetensorsWriter.Write(foreign, [
            SafetensorsEntry.FromFloats("lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight", [2, 4], new float[8]),
            SafetensorsEntry.FromFloats("lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight", [4, 2], new float[8]),
            SafetensorsEntry.FromFloats("lora_te_text_model_encoder_layers_7_mlp_fc9.lora_down.weight", [2, 4], new float[8]),
        ]);
        string output = Path.Combine(_root, "s-foreign");
        var bad = Dreambooth("sample", "--model", _base, "--prompt", "a dog", "--num-images", "1", "--steps", "2", "--output", output, "--device", "cpu",
            "--lora", foreign);
        Assert.That(bad.Exit, Is.EqualTo(1));
        Assert.That(bad.Error, Does.Contain($"{foreign}: not a LoRA of this model (Kohya layout): 3 tensor(s) name no linear layer of it: unet (2): " +
                                            "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight"));
        Assert.That(bad.Error, Does.Contain("text_encoder (1): lora_te_text_model_encoder_layers_7_mlp_fc9.lora_down.weight"));
        Assert.That(Directory.Exists(output), Is.False);
        var missing = Dreambooth("sample", "--model", _base, "--prompt", "a dog", "--num-images", "1", "--steps", "2", "--output", output, "--device", "cpu",
            "--lora", Path.Combine(_root, "nowhere"));
        Assert.That(missing.Error, Does.Contain("nowhere: no LoRA file there"));
    }
}
