// The one training loop of train and train-sr (and of pretrain and the demo to come): it reads top to bottom.
using System.Diagnostics;
using DreamBooth.Autograd;
using DreamBooth.Models.Pipeline;

namespace DreamBooth.Trainer;

/// <summary>How long and how a run trains: the derived step counts, the optimizer's settings, the outputs' cadence.</summary>
public sealed record LoopSettings(int BatchSize, int Accumulation, int MaxSteps, LrSchedule Schedule, TrainOptions Options, ulong Seed)
{
    /// <summary>diffusers' arithmetic: batches per epoch = ⌈length / batch⌉, optimizer steps per epoch = ⌈batches /
    /// accumulation⌉, max steps = epochs × that unless --max_train_steps is given; --scale_lr multiplies the rate by
    /// accumulation × batch size; warm-up and cycles go to the schedule as given.</summary>
    public static LoopSettings From(TrainOptions o, int datasetLength, ulong seed)
    {
        int batches = DataOrder.BatchesPerEpoch(datasetLength, o.TrainBatchSize);
        int stepsPerEpoch = (batches + o.GradientAccumulationSteps - 1) / o.GradientAccumulationSteps;
        int maxSteps = o.MaxTrainSteps ?? o.NumTrainEpochs * stepsPerEpoch;
        double lr = o.ScaleLr ? o.LearningRate * o.GradientAccumulationSteps * o.TrainBatchSize : o.LearningRate;
        var schedule = LrSchedule.Create(o.LrScheduler, (float)lr, o.LrWarmupSteps, maxSteps, o.LrNumCycles, o.LrPower);
        return new LoopSettings(o.TrainBatchSize, o.GradientAccumulationSteps, maxSteps, schedule, o, seed);
    }
}

/// <summary>The losses of one optimizer step (means over its micro-batches) and what the update did.</summary>
public sealed record StepResult(double Loss, double Instance, double? Prior, float GradNorm, bool Skipped);

public static class TrainingLoop
{
    public static void Run(ITrainingTask task, LoopSettings s)
    {
        var o = s.Options;
        using var optimizer = CreateOptimizer(task, s);
        var scaler = o.MixedPrecision == "fp16" ? new GradScaler() : null;
        Checkpoints.RemoveLeftovers(o.OutputDir);
        var state = Resume(task, optimizer, scaler, s) ?? new TrainingState(0, 0, 0, 0, s.Seed);
        using var log = TrainLog.Open(o.OutputDir, state.Step);
        var backend = task.Components[0].Store.Backend;
        backend.Memory.ResetPeak();   // this run's peak (the demo trains several in one process)
        var clock = Stopwatch.StartNew();
        int firstStep = state.Step;
        Tape.DetectAnomaly = o.DetectAnomaly;

        try
        {
            ProgressBar.Run("training", s.MaxSteps, advance =>
            {
                while (state.Step < s.MaxSteps)
                {
                    optimizer.Lr = s.Schedule.LrAt(state.Step);
                    int epoch = state.Epoch;
                    (var losses, state) = AccumulateGradients(task, state, s, scaler);
                    var update = OptimizerStep(optimizer, scaler, (float)o.MaxGradNorm, losses, state.Step + 1);
                    state = state with { Step = state.Step + 1 };
                    log.Write(new StepRecord(state.Step, epoch, losses.Loss, losses.Instance, losses.Prior, optimizer.Lr, update.GradNorm,
                        scaler?.Scale, update.Skipped, (state.Step - firstStep) / clock.Elapsed.TotalSeconds, backend.Memory.PeakBytes / 1048576.0));
                    if (update.Skipped) Console.Error.WriteLine($"step {state.Step}: the fp16 gradients hold Inf or NaN (an overflow, or a NaN in the loss); step skipped, loss scale now {scaler!.Scale}");
                    if (state.Step % o.CheckpointingSteps == 0)
                    {
                        Checkpoints.Save(o.OutputDir, task.Components, optimizer, scaler, state, s.Schedule, o.CheckpointsTotalLimit);
                        log.Plot();
                    }
                    if (state.Step % o.ValidationSteps == 0 || state.Step == s.MaxSteps) Validate(task, o.OutputDir, state.Step);
                    advance(state.Step, $"step {state.Step}/{s.MaxSteps} loss {losses.Loss:F4}");
                }
            }, start: state.Step);
        }
        finally { Tape.DetectAnomaly = false; }

        SaveModel(task, o.OutputDir);
        log.Plot();
        Console.Error.WriteLine($"trained {state.Step - firstStep} steps in {clock.Elapsed:hh\\:mm\\:ss}; peak {backend.Name} tensor memory " +
                                $"{backend.Memory.PeakBytes / 1048576.0:F0} MiB (the process peaked at " +
                                $"{Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB resident; optimizer state " +
                                $"{optimizer.StateBytes / 1048576.0:F1} MiB); wrote {o.OutputDir}");
    }

    /// <summary>AdamW over every trained component (one param group each), or AdamW8bit with --use_8bit_adam.</summary>
    static Optimizer CreateOptimizer(ITrainingTask task, LoopSettings s)
    {
        var o = s.Options;
        var stores = task.Components.Select(c => c.Store).ToList();
        float beta1 = (float)o.AdamBeta1, beta2 = (float)o.AdamBeta2, decay = (float)o.AdamWeightDecay, eps = (float)o.AdamEpsilon;
        return o.Use8bitAdam ? new AdamW8bit(stores, s.Schedule.BaseLr, beta1, beta2, decay, eps)
            : new AdamW(stores, s.Schedule.BaseLr, beta1, beta2, decay, eps);
    }

    /// <summary>The micro-batches of one optimizer step: --gradient_accumulation_steps of them, or fewer at an epoch's end
    /// (accelerate syncs at the end of the data), each loss scaled by 1/accumulation (and the fp16 loss scale) into backward.
    /// Gradients accumulate in the stores' flat buffers; every activation is freed with its micro-batch's scope.</summary>
    static (StepResult Losses, TrainingState Next) AccumulateGradients(ITrainingTask task, TrainingState state, LoopSettings s, GradScaler? scaler)
    {
        int batches = DataOrder.BatchesPerEpoch(task.DatasetLength, s.BatchSize);
        double loss = 0, instance = 0, prior = 0;
        bool hasPrior = false;
        int micro = 0;
        while (micro < s.Accumulation && state.Batch < batches)
        {
            var examples = DataOrder.Batch(state.Seed, state.Epoch, state.Batch, task.DatasetLength, s.BatchSize);
            using (var scope = new TensorScope())
            {
                var l = task.Loss(examples, new StepNoise(state.Seed, (ulong)state.MicroStep));
                l.Loss.Backward((scaler?.Scale ?? 1f) / s.Accumulation);
                loss += l.Loss.Item();
                instance += l.Instance.Item();
                if (l.Prior is { } p) { prior += p.Item(); hasPrior = true; }
            }
            micro++;
            state = state with { Batch = state.Batch + 1, MicroStep = state.MicroStep + 1 };
        }
        if (state.Batch == batches) state = state with { Epoch = state.Epoch + 1, Batch = 0 };
        return (new StepResult(loss / micro, instance / micro, hasPrior ? prior / micro : null, float.NaN, false), state);
    }

    /// <summary>Clip to --max_grad_norm and take the AdamW step (through the loss scaler under fp16), then zero the grads.
    /// A non-finite gradient without a scaler stops the run with the step and loss; the checkpoints already written stay.</summary>
    static StepResult OptimizerStep(Optimizer optimizer, GradScaler? scaler, float maxGradNorm, StepResult losses, int step)
    {
        StepResult result;
        if (scaler is not null)
        {
            var r = scaler.Step(optimizer, maxGradNorm);
            result = losses with { GradNorm = r.GradNorm, Skipped = r.Skipped };
        }
        else
        {
            float norm = optimizer.ClipGradNorm(maxGradNorm);
            if (!float.IsFinite(norm))
                throw new InvalidOperationException($"step {step}: the gradient norm is {norm} (loss {losses.Loss}); training stopped. " +
                                                    "Lower --learning_rate, or resume from the last checkpoint");
            optimizer.Step();
            result = losses with { GradNorm = norm };
        }
        optimizer.ZeroGrad();
        return result;
    }

    /// <summary>The final model; when it cannot be written (a full disk), the error says how to finish from the checkpoints.</summary>
    static void SaveModel(ITrainingTask task, string outputDir)
    {
        try { task.SaveModel(outputDir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string then = Checkpoints.List(outputDir) is { Count: > 0 } all
                ? $"the last checkpoint is {Path.GetFileName(all[^1].Dir)}: make room and rerun with --resume_from_checkpoint latest, which ends with the same weights"
                : "no checkpoint was written (see --checkpointing_steps): make room and run again";
            throw new IOException($"{outputDir}: the final model could not be written ({Guard.Reason(e)}); {then}");
        }
    }

    static TrainingState? Resume(ITrainingTask task, Optimizer optimizer, GradScaler? scaler, LoopSettings s)
    {
        if (s.Options.ResumeFromCheckpoint is not { } request) return null;
        if (Checkpoints.Find(s.Options.OutputDir, request) is not { } dir)
        {
            Console.Error.WriteLine($"--resume_from_checkpoint {request}: no checkpoint in {s.Options.OutputDir} yet; starting a new run");
            return null;
        }
        var state = Checkpoints.Load(dir, task.Components, optimizer, scaler);
        Console.Error.WriteLine($"resuming from {dir} at step {state.Step} (epoch {state.Epoch}, batch {state.Batch})");
        return state;
    }

    /// <summary>validation/step-N.png: the validation prompt at fixed seeds, so grids of different steps compare.</summary>
    static void Validate(ITrainingTask task, string outputDir, int step)
    {
        using var scope = new TensorScope();
        if (task.Validate() is not { } images) return;
        string dir = Path.Combine(outputDir, "validation");
        Directory.CreateDirectory(dir);
        Images.SaveGrid(Path.Combine(dir, $"step-{step}.png"), images.Pixels, images.Count, images.Height, images.Width);
    }
}
