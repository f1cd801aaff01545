// Determinism across core counts: the same seed on the cpu tier trains bit-identical weights on 1, 2 or 3 cores.
using DreamBooth.Tests.Models;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class DeterminismTests
{
    /// <summary>
    /// One pretraining step of the toy base model at batch 8, in child processes that see 1, 2 and 3 cores
    /// (DOTNET_PROCESSOR_COUNT, which every Cpu op's work split reads). Its attention projections' weight gradients are
    /// deep GEMMs (k = 2,048 tokens against 64 × 64), which the GEMM splits along the depth: before that split was fixed at
    /// 8 parts, it followed the core count and the weights differed in their last bits.
    /// </summary>
    [Test]
    public void OnePretrainingStepGivesTheSameWeightsOnOneTwoAndThreeCores()
    {
        string root = ModelData.TempFolder();
        try
        {
            var weights = new[] { 1, 2, 3 }.Select(cores =>
            {
                string output = Path.Combine(root, $"cores-{cores}");
                var run = DreamboothProcess.Run(["pretrain", "--world", "toy", "--output", output, "--stage", "base", "--base_steps", "1",
                    "--train_batch_size", "8", "--lr_warmup_steps", "0", "--quality_prompts", "0", "--device", "cpu"],
                    new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = cores.ToString() });
                Assert.That(run.Exit, Is.Zero, run.Error);
                return new[] { Path.Combine("unet", "diffusion_pytorch_model.safetensors"), Path.Combine("text_encoder", "model.safetensors") }
                    .SelectMany(f => File.ReadAllBytes(Path.Combine(output, "base", f))).ToArray();
            }).ToList();
            Assert.That(weights[1], Is.EqualTo(weights[0]), "2 cores against 1");
            Assert.That(weights[2], Is.EqualTo(weights[0]), "3 cores against 1");
        }
        finally { Directory.Delete(root, true); }
    }
}
