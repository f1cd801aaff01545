// Crash safety of `dreambooth train`: SIGKILLs at random moments (class-image generation, checkpoint writes, steps),
// each followed by --resume_from_checkpoint latest, must leave every checkpoint and class image whole and end with the
// weights of an uninterrupted run; a full disk or a read-only folder is a clear error that keeps the last checkpoint.
using System.Diagnostics;
using System.Text.Json.Nodes;
using DreamBooth.Models.Formats;
using DreamBooth.Tests.Models;
using DreamBooth.Tests.Support;
using DreamBooth.Trainer;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Trainer;

[TestFixture, NonParallelizable]
public class CrashSafetyTests
{
    const int Steps = 12, ClassImageCount = 6;
    string _root = null!, _base = null!;
    byte[] _reference = null!;
    double _seconds;

    /// <summary>A tiny pipeline, and the uninterrupted run (as a child process, timed) whose weights every killed run must end with.</summary>
    [OneTimeSetUp]
    public void ReferenceRun()
    {
        _root = ModelData.TempFolder();
        _base = Path.Combine(_root, "base");
        Assert.That(TrainTests.Dreambooth("init-model", "--config", ModelData.Path("tiny-sd"), "--output", _base, "--seed", "0", "--device", "cpu").Exit, Is.Zero);
        string output = Path.Combine(_root, "reference"), classes = Path.Combine(_root, "reference-classes");
        var clock = Stopwatch.StartNew();
        var run = DreamboothProcess.Run(Train(output, classes));
        _seconds = clock.Elapsed.TotalSeconds;
        Assert.That(run.Exit, Is.Zero, run.Error);
        _reference = Unet(output);
    }

    [OneTimeTearDown]
    public void Delete() => Directory.Delete(_root, true);

    /// <summary>Prior preservation with class images drawn one at a time, a checkpoint every step (so kills often land in
    /// one), two kept (so pruning is killed too), and always --resume_from_checkpoint latest.</summary>
    string[] Train(string output, string classes) =>
    [
        "train", "--pretrained_model_name_or_path", _base, "--instance_data_dir", ModelData.Path("dog"), "--instance_prompt", "a photo of sks dog",
        "--with_prior_preservation", "--class_data_dir", classes, "--class_prompt", "a photo of dog", "--num_class_images", ClassImageCount.ToString(),
        "--sample_batch_size", "1", "--class_inference_steps", "4", "--output_dir", output, "--seed", "3", "--device", "cpu",
        "--learning_rate", "1e-3", "--max_train_steps", Steps.ToString(), "--checkpointing_steps", "1", "--checkpoints_total_limit", "2",
        "--resume_from_checkpoint", "latest",
    ];

    static byte[] Unet(string dir) => File.ReadAllBytes(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"));

    [Test]
    public void ThreeKillsAreSurvived() => KillAndResume(kills: 3, seed: 1);

    [Test, Category("Slow")]
    public void TwentyKillsAreSurvived() => KillAndResume(kills: 20, seed: 2);

    /// <summary>
    /// Rounds of: start the run, SIGKILL it after a random time (uniform over 10–100 % of an uninterrupted run's), check
    /// what is on disk, start it again, until it ends by itself; then its weights must equal the reference's bit for bit,
    /// its log must read as one run, and nothing temporary may be left. New rounds start until enough kills landed.
    /// </summary>
    void KillAndResume(int kills, int seed)
    {
        var random = new Random(seed);
        var landed = new Dictionary<string, int> { ["class images"] = 0, ["a checkpoint write"] = 0, ["training steps"] = 0 };
        int done = 0, rounds = 0;
        while (done < kills)
        {
            rounds++;
            string output = Path.Combine(_root, $"killed-{seed}-{rounds}"), classes = output + "-classes";
            for (int attempt = 0; ; attempt++)
            {
                Assert.That(attempt, Is.LessThan(100), "the run makes no progress between kills");
                var stale = Partial(output);
                using var child = new DreamboothProcess(Train(output, classes));
                bool killed = done < kills && (random.Next(3) == 0
                    ? KillInACheckpointWrite(child, output, stale)
                    : !child.WaitForExit((int)((0.1 + 0.9 * random.NextDouble()) * _seconds * 1000)));
                if (killed)
                {
                    if (!child.HasExited) child.Kill();
                    done++;
                    landed[Where(output, classes, stale)]++;
                    CheckWhole(output, classes);
                    continue;
                }
                child.WaitForExit(Timeout.Infinite);
                Assert.That(child.ExitCode, Is.Zero, child.Error);
                break;
            }
            CheckWhole(output, classes);
            Assert.That(Unet(output), Is.EqualTo(_reference), $"round {rounds}: the final weights differ from the uninterrupted run's");
            var steps = File.ReadAllLines(Path.Combine(output, "logs", "train.jsonl")).Select(l => (int)JsonNode.Parse(l)!["step"]!);
            Assert.That(steps, Is.EqualTo(Enumerable.Range(1, Steps)), "the log reads as one run");
            Assert.That(new[] { "*.tmp", "*.old" }.SelectMany(p => Directory.GetFileSystemEntries(output, p, SearchOption.AllDirectories)
                .Concat(Directory.GetFileSystemEntries(classes, p))), Is.Empty, "no temporary file or folder is left");
        }
        TestContext.Progress.WriteLine($"{done} kills survived in {rounds} rounds: " + string.Join(", ", landed.Select(l => $"{l.Value} during {l.Key}")));
    }

    /// <summary>The partial checkpoints (.checkpoint-N.GUID.tmp) in the output folder now.</summary>
    static HashSet<string> Partial(string output) =>
        Directory.Exists(output) ? Directory.GetDirectories(output, ".checkpoint-*.tmp").ToHashSet() : [];

    /// <summary>Polls every millisecond for a checkpoint being written (a partial folder not in <paramref name="stale"/>)
    /// and kills the run the moment one appears; false when the run ended first.</summary>
    static bool KillInACheckpointWrite(DreamboothProcess child, string output, HashSet<string> stale)
    {
        while (!child.HasExited)
        {
            if (Partial(output).Except(stale).Any()) { child.Kill(); return true; }
            Thread.Sleep(1);
        }
        child.WaitForExit(Timeout.Infinite);
        return false;
    }

    /// <summary>What the kill interrupted, read from the disk: a class-image folder still short, a new partial checkpoint,
    /// or neither (a training step, a log line, a pruning, the final save).</summary>
    static string Where(string output, string classes, HashSet<string> stale) =>
        !Directory.Exists(classes) || ImageFolder.List(classes, "--class_data_dir").Length < ClassImageCount ? "class images"
        : Partial(output).Except(stale).Any() ? "a checkpoint write"
        : "training steps";

    /// <summary>Every checkpoint has all its files and each reads in full; every class image that counts decodes in full.</summary>
    static void CheckWhole(string output, string classes)
    {
        foreach (var (step, dir) in Checkpoints.List(output))
        {
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")))!;
            Assert.That((int)state["step"]!, Is.EqualTo(step), dir);
            foreach (string file in new[] { "optimizer.safetensors", Path.Combine("unet", "diffusion_pytorch_model.safetensors") })
            {
                using var f = SafetensorsFile.Open(Path.Combine(dir, file));
                foreach (var t in f.Tensors) Assert.That(f.ReadFloats(t.Name), Has.Length.EqualTo(t.Shape.Aggregate(1L, (a, b) => a * b)));
            }
            Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "unet", "config.json"))), Is.Not.Null);
        }
        if (!Directory.Exists(classes)) return;
        foreach (string image in ImageFolder.List(classes, "--class_data_dir"))
        {
            Assert.That(Path.GetFileName(image), Does.Match(@"^\d+-[0-9a-f]{12}\.png$"));
            using var decoded = Image.Load<Rgb24>(image);
            Assert.That(decoded.Width, Is.GreaterThan(0), image);
        }
    }

    /// <summary>A tmpfs of the size at <paramref name="dir"/> (root only: elsewhere the test is skipped, saying why).</summary>
    static void Mount(string dir, string options)
    {
        Directory.CreateDirectory(dir);
        var run = Process.Start(new ProcessStartInfo("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]) { RedirectStandardError = true })!;
        string error = run.StandardError.ReadToEnd();
        run.WaitForExit();
        if (run.ExitCode != 0) Assert.Ignore($"mounting a tmpfs needs root ({error.Trim()})");
    }

    static void Remount(string dir, string options) =>
        Process.Start(new ProcessStartInfo("mount", ["-o", "remount," + options, dir]))!.WaitForExit();

    static void Unmount(string dir) => Process.Start(new ProcessStartInfo("umount", ["-l", dir]))!.WaitForExit();

    string[] Plain(string output, int steps) =>
    [
        "train", "--pretrained_model_name_or_path", _base, "--instance_data_dir", ModelData.Path("dog"), "--instance_prompt", "a photo of sks dog",
        "--output_dir", output, "--seed", "3", "--device", "cpu", "--learning_rate", "1e-3", "--max_train_steps", steps.ToString(),
        "--checkpointing_steps", "1", "--resume_from_checkpoint", "latest",
    ];

    [Test]
    public void AFullDiskIsAClearErrorThatKeepsThePreviousCheckpointAndTheRunResumesExactly()
    {
        string disk = Path.Combine(_root, "small-disk"), output = Path.Combine(disk, "out");
        Mount(disk, "size=20m");   // a checkpoint of the tiny model is 12 MB: the first fits, the second does not
        try
        {
            var full = TrainTests.Dreambooth(Plain(output, 3));
            Assert.That(full.Exit, Is.EqualTo(1));
            Assert.That(full.Error, Does.Contain($"{Path.Combine(output, "checkpoint-2")}: the checkpoint could not be written (No space left on device); " +
                                                 "checkpoint-1 and those before it are left as they were"));
            Assert.That(full.Error, Does.Not.Contain(".tmp").And.Not.Contain("   at "), "no temporary name, no stack trace");
            Assert.That(Checkpoints.List(output).Select(c => c.Step), Is.EqualTo(new[] { 1 }));
            Assert.That(Directory.GetDirectories(output, ".*"), Is.Empty, "the partial checkpoint was removed");
            CheckWhole(output, classes: Path.Combine(disk, "none"));

            Remount(disk, "size=200m");
            Assert.That(TrainTests.Dreambooth(Plain(output, 3)).Exit, Is.Zero, "resumed once there is room");
            string uninterrupted = Path.Combine(_root, "uninterrupted");
            Assert.That(TrainTests.Dreambooth(Plain(uninterrupted, 3)).Exit, Is.Zero);
            Assert.That(Unet(output), Is.EqualTo(Unet(uninterrupted)), "the resumed run ends with the uninterrupted run's weights");
        }
        finally { Unmount(disk); }
    }

    [Test]
    public void AReadOnlyOutputOrClassFolderFailsBeforeAnyWorkAndKeepsTheCheckpoints()
    {
        string disk = Path.Combine(_root, "read-only"), output = Path.Combine(disk, "out");
        Mount(disk, "size=50m");
        try
        {
            Assert.That(TrainTests.Dreambooth(Plain(output, 2)).Exit, Is.Zero);
            byte[] before = Unet(Path.Combine(output, "checkpoint-2"));
            Remount(disk, "ro");
            var run = TrainTests.Dreambooth(Plain(output, 4));
            Assert.That(run.Exit, Is.EqualTo(1));
            Assert.That(run.Error, Does.Contain($"--output_dir {output}: cannot write there (Read-only file system)")
                .And.Not.Contain(".write-test"), "the reason, not the probe file's name");
            Assert.That(run.Error, Does.Not.Contain("training:"), "it failed before the first step");
            Assert.That(Unet(Path.Combine(output, "checkpoint-2")), Is.EqualTo(before));

            string classes = Path.Combine(disk, "classes"), elsewhere = Path.Combine(_root, "ro-out");
            var prior = TrainTests.Dreambooth([.. Plain(elsewhere, 1), "--with_prior_preservation", "--class_data_dir", classes,
                "--class_prompt", "a photo of dog", "--num_class_images", "2"]);
            Assert.That(prior.Exit, Is.EqualTo(1));
            Assert.That(prior.Error, Does.Contain($"--class_data_dir {classes}: cannot write there (Read-only file system"));
            Assert.That(prior.Error, Does.Not.Contain("class images \""), "no class image was drawn first");
        }
        finally { Unmount(disk); }
    }
}
