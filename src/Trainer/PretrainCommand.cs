// `dreambooth pretrain --world toy`: trains the embedded cascade (base, then super-resolution) from scratch with the one loop.
using System.CommandLine;
using DreamBooth.Models.Pipeline;
using DreamBooth.Trainer.World;

namespace DreamBooth.Trainer;

public static class PretrainCommand
{
    public static Command Create()
    {
        var world = new Option<string>("--world") { Description = "The procedural world to train on", DefaultValueFactory = _ => "toy" };
        world.AcceptOnlyFromAmong("toy");
        var output = new Option<string>("--output", "--output_dir") { Description = "Folder of the stages: OUTPUT/base and OUTPUT/sr", Required = true };
        var stage = new Option<string>("--stage") { Description = "all (base, then sr), base or sr", DefaultValueFactory = _ => "all" };
        stage.AcceptOnlyFromAmong("all", "base", "sr");
        var baseSteps = new Option<int>("--base_steps", "--base-steps") { Description = "Optimizer steps of the base stage", DefaultValueFactory = _ => 6000 };
        var srSteps = new Option<int>("--sr_steps", "--sr-steps") { Description = "Optimizer steps of the super-resolution stage", DefaultValueFactory = _ => 2000 };
        var batch = new Option<int>("--train_batch_size", "--train-batch-size") { Description = "Scenes per step", DefaultValueFactory = _ => 16 };
        var lr = new Option<double>("--learning_rate", "--learning-rate") { Description = "AdamW learning rate (after the warm-up)", DefaultValueFactory = _ => 6e-4 };
        var scheduler = new Option<string>("--lr_scheduler", "--lr-scheduler") { Description = "Learning-rate schedule (diffusers' names)", DefaultValueFactory = _ => "cosine" };
        scheduler.AcceptOnlyFromAmong([.. DreamBooth.Autograd.LrSchedule.Names]);
        var warmup = new Option<int>("--lr_warmup_steps", "--lr-warmup-steps") { Description = "Warm-up steps of the schedule", DefaultValueFactory = _ => 200 };
        var checkpointing = new Option<int>("--checkpointing_steps", "--checkpointing-steps") { Description = "Checkpoint every this many steps", DefaultValueFactory = _ => 250 };
        var validation = new Option<int>("--validation_steps", "--validation-steps") { Description = "Validation grid every this many steps", DefaultValueFactory = _ => 1000 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the initial weights and of every scene", DefaultValueFactory = _ => 0 };
        var resume = new Option<string?>("--resume_from_checkpoint", "--resume-from-checkpoint") { Description = "latest: continue each stage exactly" };
        var measure = new Option<int>("--quality_prompts", "--quality-prompts")
        { Description = "Prompts the quality table samples after training (OUTPUT/quality.md); 0 skips it", DefaultValueFactory = _ => 300 };
        var guidance = new Option<double>("--guidance_scale", "--guidance-scale")
        { Description = "Classifier-free guidance weight of the quality table's base samples (≤ 1 turns it off)", DefaultValueFactory = _ => ToyEval.Guidance };
        var export = new Option<string?>("--export") { Description = "Also write both trained stages with F16 weights here (EXPORT/base, EXPORT/sr): the committed models/toy" };
        var device = new DeviceOption();
        var command = new Command("pretrain", "Train the embedded toy cascade from scratch on its procedural world (the same loop, checkpoints and logs as train).")
        {
            world, output, stage, baseSteps, srSteps, batch, lr, scheduler, warmup, checkpointing, validation, seed, resume, measure, guidance, export, device,
            device.AllowTf32,
        };
        command.SetAction(parse => Guard.Run("pretrain", () =>
        {
            string dir = parse.GetValue(output)!;
            Guard.ExpectFolder("--output", dir);
            Guard.Writable("--output", dir);
            if (!device.TryOpen(parse, out var backend)) return 1;
            using (backend)
                foreach (bool sr in parse.GetValue(stage) switch { "base" => new[] { false }, "sr" => [true], _ => [false, true] })
                {
                    string stageDir = Path.Combine(dir, sr ? "sr" : "base");
                    if (File.Exists(Path.Combine(stageDir, "model_index.json")))
                    {
                        Console.Error.WriteLine($"{stageDir}: this stage is already trained; skipping it");
                        continue;
                    }
                    if (parse.GetValue(resume) is null && Checkpoints.List(stageDir).Count > 0)
                        throw new IOException($"{stageDir} holds checkpoints of another run: continue it with --resume_from_checkpoint latest");
                    string init = Path.Combine(stageDir, "initial");
                    ToyModels.WriteConfigs(init, sr);
                    ulong stageSeed = parse.GetValue(seed) + (sr ? 1UL : 0UL);
                    var options = new TrainOptions
                    {
                        Model = init, Concepts = [], TrainBatchSize = parse.GetValue(batch), MaxTrainSteps = parse.GetValue(sr ? srSteps : baseSteps),
                        LearningRate = parse.GetValue(lr), LrScheduler = parse.GetValue(scheduler)!, LrWarmupSteps = parse.GetValue(warmup),
                        CheckpointingSteps = parse.GetValue(checkpointing), CheckpointsTotalLimit = 2, ValidationSteps = parse.GetValue(validation),
                        Seed = stageSeed, OutputDir = stageDir, ResumeFromCheckpoint = parse.GetValue(resume), TrainTextEncoder = true,
                    };
                    var pipeline = StableDiffusionPipeline.Initialize(init, backend, stageSeed, Trainable.Unet | Trainable.TextEncoder);
                    using var task = new ToyPretrainTask(pipeline, sr, options.TrainBatchSize);
                    var settings = LoopSettings.From(options, task.DatasetLength, stageSeed);
                    Console.Error.WriteLine($"pretrain {(sr ? "super-resolution 32→64" : "base 32×32")} on {backend.Name}: " +
                                            $"{pipeline.UnetWeights.Length:N0} UNet and {pipeline.TextEncoderWeights.Length:N0} text encoder parameters, " +
                                            $"{settings.MaxSteps} steps of {options.TrainBatchSize} scenes");
                    TrainingLoop.Run(task, settings);
                }
                string trained = dir;
                if (parse.GetValue(export) is { } exportDir)
                {
                    foreach (string s in new[] { "base", "sr" }.Where(s => File.Exists(Path.Combine(dir, s, "model_index.json"))))
                    {
                        using var model = StableDiffusionPipeline.Load(Path.Combine(dir, s), backend);
                        model.Save(Path.Combine(exportDir, s), dtype: DreamBooth.Models.Formats.SafetensorsDType.F16);
                    }
                    trained = exportDir;   // measure what is shipped
                }
                if (parse.GetValue(measure) is > 0 and var prompts && File.Exists(Path.Combine(trained, "base", "model_index.json")))
                {
                    using var baseModel = StableDiffusionPipeline.Load(Path.Combine(trained, "base"), backend);
                    using var srModel = File.Exists(Path.Combine(trained, "sr", "model_index.json")) ? StableDiffusionPipeline.Load(Path.Combine(trained, "sr"), backend) : null;
                    var report = ToyQuality.Measure(baseModel, srModel, prompts, starSamples: Math.Min(64, prompts), srSamples: Math.Min(32, prompts),
                        parse.GetValue(guidance));
                    ToyQuality.Write(report, trained);
                    Console.WriteLine(report.ToMarkdown());
                }
            return 0;
        }));
        return command;
    }
}
