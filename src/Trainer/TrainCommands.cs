// `train` and `train-sr`: DreamBooth on a diffusers pipeline, and the fine-tuning of a super-resolution stage on the subject.
using System.CommandLine;
using System.Text.Json.Nodes;
using DreamBooth.Kernels;

namespace DreamBooth.Trainer;

public static class TrainCommands
{
    public static Command Train() => new TrainCommandLine(superResolution: false).Build("train",
        "DreamBooth: fine-tune a text-to-image model on a few images of a subject (diffusers' train_dreambooth.py options).",
        (o, backend) => Run(o, backend, superResolution: false));

    public static Command TrainSuperResolution() => new TrainCommandLine(superResolution: true).Build("train-sr",
        "Fine-tune a super-resolution stage on (low-res, high-res) pairs of the subject, with low noise augmentation (Imagen's recipe).",
        (o, backend) => Run(o, backend, superResolution: true));

    /// <summary>One training run as the command runs it (the demo calls it too).</summary>
    public static int Run(TrainOptions o, IBackend backend, bool superResolution)
    {
        ulong seed = Seed(o);
        using var source = ModelSource.Open(o.Model, "--pretrained_model_name_or_path", o.SingleFileConfig);
        o = o with { Model = source.Folder };
        using var task = DreamBoothTask.Create(o, backend, superResolution, seed);
        var settings = LoopSettings.From(o, task.DatasetLength, seed);
        Console.Error.WriteLine($"{(superResolution ? "train-sr" : "train")} on {backend.Name}: {task.DatasetLength} examples per epoch" +
                                (o.WithPriorPreservation ? $" ({task.ClassImageCount} class images)" : "") +
                                $", batch {o.TrainBatchSize} × {o.GradientAccumulationSteps} accumulation, {settings.MaxSteps} steps, " +
                                $"{task.Resolution}×{task.Resolution}, lr {settings.Schedule.BaseLr:G3} ({o.LrScheduler}), seed {seed}");
        TrainingLoop.Run(task, settings);
        return 0;
    }

    /// <summary>--seed, else the seed of the checkpoint being resumed, else a random one (printed, and kept in every
    /// checkpoint so a resume continues the same draws).</summary>
    static ulong Seed(TrainOptions o)
    {
        if (o.ResumeFromCheckpoint is { } request && Checkpoints.Find(o.OutputDir, request) is { } dir)
        {
            ulong saved = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")))?["seed"]?.GetValue<ulong>()
                          ?? throw new InvalidDataException($"{dir}/trainer_state.json: no seed");
            if (o.Seed is { } given && given != saved)
                Console.Error.WriteLine($"--seed {given} differs from the checkpoint's {saved}; the checkpoint's is used, so the run continues exactly");
            return saved;
        }
        return o.Seed ?? (ulong)Random.Shared.NextInt64(0, int.MaxValue);
    }
}
