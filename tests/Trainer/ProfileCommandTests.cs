// `dreambooth profile` on the tiny pipeline: every phase's ops are reported with their work, and bad input is refused before any step.
using System.Text.Json;
using DreamBooth.Tests.Models;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

public class ProfileCommandTests
{
    /// <summary>Issue 17: one SD 1.5 UNet training step on the cpu tier at 64×64 latents (512 px), batch 1, with gradient
    /// checkpointing, in f32 and under bf16 autocast, within 16 GB (perf/README.md has the measured time and memory).</summary>
    [Test, Category("Slow")]
    public void AnSd15TrainingStepFitsIn16GbOnTheCpuTier([Values("no", "bf16")] string precision)
    {
        string root = ModelData.TempFolder();
        try
        {
            string json = Path.Combine(root, "profile.json");
            var run = TrainTests.Dreambooth("profile", "--model", ModelData.Path("sd15"), "--resolution", "64", "--batch", "1", "--gradient_checkpointing",
                "--mixed_precision", precision, "--steps", "1", "--warmup", "0", "--json", json, "--device", "cpu");
            Assert.That(run.Exit, Is.Zero, run.Error);
            var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            TestContext.Out.WriteLine($"{precision}: step {report.GetProperty("step_ms").GetDouble() / 1000:F1} s, peak tensor memory {report.GetProperty("peak_mib").GetDouble():F0} MiB");
            Assert.That(report.GetProperty("parameters").GetInt64(), Is.EqualTo(859_520_964));
            // 16 GB is 15,259 MiB; the process holds about 1.2 GiB beyond its tensors (measured: 14,685 MiB resident at a
            // 13,501 MiB tensor peak), so the tensors must stay under 14,000 MiB.
            Assert.That(report.GetProperty("peak_mib").GetDouble(), Is.LessThan(14_000));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void AStepIsReportedOpByOpAndPhaseByPhase()
    {
        string root = ModelData.TempFolder();
        try
        {
            string json = Path.Combine(root, "profile.json");
            string[] args = ["profile", "--model", ModelData.Path("tiny-sd"), "--batch", "2", "--steps", "2", "--json", json, "--device", "cpu"];
            var run = TrainTests.Dreambooth(args);
            Assert.That(run.Exit, Is.Zero, run.Error);
            var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            var rows = report.GetProperty("rows").EnumerateArray().ToList();
            Assert.That(rows.Select(r => r.GetProperty("phase").GetString()).Distinct(), Is.EquivalentTo(new[] { "forward", "backward", "optimizer" }));
            Assert.That(rows.Sum(r => r.GetProperty("share").GetDouble()), Is.EqualTo(1).Within(1e-9));
            // One fused AdamW launch and one MSE loss per step: calls are per step, the initialisation is not counted.
            Assert.That(rows.Single(r => r.GetProperty("op").GetString() == "adamw").GetProperty("calls_per_step").GetDouble(), Is.EqualTo(1));
            Assert.That(rows.Single(r => r.GetProperty("op").GetString() == "mse loss").GetProperty("calls_per_step").GetDouble(), Is.EqualTo(1));
            var convIn = rows.First(r => r.GetProperty("op").GetString() == "conv2d" && r.GetProperty("shape").GetString()!.StartsWith("x[2,4,16,16]"));
            Assert.That(convIn.GetProperty("gflops").GetDouble(), Is.GreaterThan(0));
            Assert.That(convIn.GetProperty("bound").GetString(), Is.AnyOf("compute", "memory"));
            double opMs = rows.Sum(r => r.GetProperty("ms_per_step").GetDouble());
            Assert.That(opMs, Is.GreaterThan(0).And.LessThanOrEqualTo(report.GetProperty("step_ms").GetDouble()), "the ops fit inside the step's wall time");
            Assert.That(report.GetProperty("peak_gflops").GetDouble(), Is.GreaterThan(0));

            var again = TrainTests.Dreambooth(args);
            Assert.That((again.Exit, again.Error), Is.EqualTo((1, $"dreambooth profile: --json {json} already exists; choose another file\n")));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void BadInputIsRefusedBeforeAnyStep()
    {
        string root = ModelData.TempFolder();
        try
        {
            var missing = TrainTests.Dreambooth("profile", "--model", root, "--device", "cpu");
            Assert.That((missing.Exit, missing.Error), Is.EqualTo((1, $"dreambooth profile: --model {root}: neither unet/config.json nor config.json is there\n")));
            var side = TrainTests.Dreambooth("profile", "--model", ModelData.Path("tiny-sd"), "--resolution", "17", "--device", "cpu");
            Assert.That(side.Exit, Is.EqualTo(1));
            Assert.That(side.Error, Does.StartWith("dreambooth profile: --resolution 17: must be a positive multiple of"));
        }
        finally { Directory.Delete(root, true); }
    }
}
