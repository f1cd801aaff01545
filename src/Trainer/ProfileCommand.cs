// `dreambooth profile`: a UNet training step timed op by op and by phase, each op placed against the device's roofline.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;

namespace DreamBooth.Trainer;

/// <summary>One row of the profile: an op at one shape in one phase, per step.</summary>
public sealed record ProfileRow(string Phase, string Op, string Shape, double CallsPerStep, double MsPerStep, double Share,
    double? Gflops, double GBps, string Bound, double OfRoofline);

/// <summary>The whole profile: the rows by time, the step's wall time and phase split, the roofline it was measured against.</summary>
public sealed record ProfileReport(string Model, string Device, int Batch, int Resolution, int Steps, string MixedPrecision,
    bool GradientCheckpointing, string Optimizer, long Parameters, double StepMs, IReadOnlyDictionary<string, double> PhaseMs,
    double PeakMib, double OptimizerStateMib, double PeakGflops, double PeakGBps, IReadOnlyList<ProfileRow> Rows);

public static class ProfileCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A pipeline folder (DIR/unet/config.json) or a UNet folder (DIR/config.json); weights are random, speed does not depend on them", Required = true };
        var batch = new Option<int>("--batch", "--train_batch_size") { Description = "Samples per step", DefaultValueFactory = _ => 1 };
        var resolution = new Option<int?>("--resolution") { Description = "Side of the UNet's input in its own space (latents for SD); default: the config's sample_size" };
        var steps = new Option<int>("--steps") { Description = "Timed training steps", DefaultValueFactory = _ => 3 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first, and for at least 10 s: the JIT replaces first-call kernel code meanwhile", DefaultValueFactory = _ => 1 };
        var precision = new Option<string>("--mixed_precision", "--mixed-precision") { Description = "no, fp16 or bf16, as train", DefaultValueFactory = _ => "no" };
        precision.AcceptOnlyFromAmong("no", "fp16", "bf16");
        var checkpointing = new Option<bool>("--gradient_checkpointing", "--gradient-checkpointing") { Description = "Recompute block activations in backward, as train" };
        var adam8bit = new Option<bool>("--use_8bit_adam", "--use-8bit-adam") { Description = "AdamW with 8-bit block-wise quantised moments, as train" };
        var rows = new Option<int>("--rows") { Description = "Rows of the op table printed (all go to --json)", DefaultValueFactory = _ => 25 };
        var json = new Option<string?>("--json") { Description = "Also write every row and the summary to this JSON file (it must not exist)" };
        var device = new DeviceOption();
        var command = new Command("profile", "Time a UNet training step (noise, forward, loss, backward, AdamW or 8-bit AdamW) op by op: calls, ms, share, GFLOP/s or GB/s, and the nearest bound.")
        {
            model, batch, resolution, steps, warmup, precision, checkpointing, adam8bit, rows, json, device, device.AllowTf32,
        };
        command.SetAction(parse => Guard.Run("profile", () =>
        {
            string dir = parse.GetValue(model)!;
            string config = File.Exists(Path.Combine(dir, "unet", "config.json")) ? Path.Combine(dir, "unet", "config.json") : Path.Combine(dir, "config.json");
            if (!File.Exists(config)) throw new FileNotFoundException($"--model {dir}: neither unet/config.json nor config.json is there");
            var unetConfig = UNet2DConditionConfig.Load(config);
            int side = parse.GetValue(resolution) ?? unetConfig.SampleSize ?? 64, down = 1 << (unetConfig.BlockOutChannels.Length - 1);
            if (parse.GetValue(batch) < 1 || parse.GetValue(steps) < 1 || parse.GetValue(warmup) < 0)
                throw new ArgumentException("--batch and --steps must be at least 1, --warmup at least 0");
            if (side < down || side % down != 0) throw new ArgumentException($"--resolution {side}: must be a positive multiple of {down} for this UNet's {unetConfig.BlockOutChannels.Length} levels");
            string? jsonPath = parse.GetValue(json);
            if (jsonPath is not null && (File.Exists(jsonPath) || Directory.Exists(jsonPath))) throw new IOException($"--json {jsonPath} already exists; choose another file");
            string schedulerPath = Path.Combine(dir, "scheduler", "scheduler_config.json");
            var schedule = NoiseSchedule.FromConfig(File.Exists(schedulerPath) ? SchedulerConfig.Load(schedulerPath) : new SchedulerConfig());
            if (!device.TryOpen(parse, out var inner)) return 1;
            using var backend = new ProfilingBackend(inner);
            var report = Run(dir, unetConfig, schedule, backend, parse.GetValue(batch), side, parse.GetValue(steps), parse.GetValue(warmup),
                parse.GetValue(precision)!, parse.GetValue(checkpointing), parse.GetValue(adam8bit));
            Console.WriteLine(Markdown(report, parse.GetValue(rows)));
            if (jsonPath is not null)
                AtomicFile.Write(jsonPath, temp => File.WriteAllText(temp, JsonSerializer.Serialize(report,
                    new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })));
            return 0;
        }));
        return command;
    }

    /// <summary>The least warm-up. .NET compiles a kernel's first calls without optimisation and replaces them after about
    /// 30 calls, compiling them on a background thread: a tiny UNet's step measured 341 ms after 1 warm-up step and
    /// 125-132 ms after 8 or more; the toy base at batch 16 measured 853 ms after 3 s of warm-up and 462 ms after 15 steps.</summary>
    static readonly TimeSpan WarmupTime = TimeSpan.FromSeconds(10);

    /// <summary>... and until the JIT has compiled nothing for QuietTime, at most MaxWarmupTime in all (Warmup.Run).</summary>
    static readonly TimeSpan QuietTime = TimeSpan.FromSeconds(1), MaxWarmupTime = TimeSpan.FromSeconds(60);

    /// <summary>Warm-up steps unrecorded, then the timed steps with each part labelled; then the device's roofline. Mixed
    /// precision sets the forward's compute dtype as train does; fp16's loss scaling (one multiply) is left out.</summary>
    public static ProfileReport Run(string name, UNet2DConditionConfig config, NoiseSchedule schedule, ProfilingBackend backend,
        int batch, int side, int steps, int warmup, string mixedPrecision, bool gradientCheckpointing, bool use8bitAdam = false)
    {
        var unet = new UNet2DConditionModel(config);
        if (gradientCheckpointing) unet.EnableGradientCheckpointing();
        using var store = new ParameterStore(backend, unet);
        store.Initialize(seed: 0);
        using Optimizer optimizer = use8bitAdam ? new AdamW8bit([store], lr: 5e-6f) : new AdamW(store, lr: 5e-6f);
        var precision = TrainOptions.ComputeDType(mixedPrecision);
        using var inputs = new TensorScope();
        var x0 = Tensor.RandomNormal(backend, 1, 0, batch, config.InChannels, side, side);                       // (B, C, R, R)
        var context = Tensor.RandomNormal(backend, 2, 0, batch, 77, config.CrossAttentionDim);                    // (B, 77, D)
        int[]? labels = config.EmbedsClassLabels ? new int[batch] : null;                                   // SR stages: class 0
        Func<Tensor, float[], Tensor> predict = (x, t) => unet.Forward(x, t, context, labels);

        void Step(int i)
        {
            using var scope = new TensorScope();
            backend.Phase = "forward";
            DenoisingLoss loss;
            using (Autocast.Enable(precision))
                loss = DenoisingObjective.Compute(schedule, predict, x0, batch, new LossSettings(), new StepNoise(0, (ulong)i));
            backend.Phase = "backward";
            loss.Loss.Backward();
            backend.Phase = "optimizer";
            optimizer.ClipGradNorm();
            optimizer.Step();
            store.ZeroGrad();
            backend.Synchronize();
        }

        backend.Recording = false;
        int done = Warmup.Run(Step, warmup, WarmupTime, QuietTime, MaxWarmupTime);
        backend.Memory.ResetPeak();
        backend.Reset();   // the weights' initialisation and the inputs were recorded too
        backend.Recording = true;
        var clock = Stopwatch.StartNew();
        ProgressBar.Run("profile", steps, advance =>
        {
            for (int i = 0; i < steps; i++) { Step(done + i); advance(i + 1); }
        });
        double stepMs = clock.Elapsed.TotalMilliseconds / steps;
        backend.Recording = false;
        var (peakGflops, peakGBps) = Roofline(backend.Inner);

        double opMs = backend.Totals.Values.Sum(t => t.Milliseconds);
        var rows = backend.Totals.Select(kv =>
        {
            var (phase, op, shape) = kv.Key;
            var t = kv.Value;
            double seconds = t.Milliseconds / 1000, gbps = t.Bytes / seconds / 1e9;
            double? gflops = t.Flops > 0 ? t.Flops / seconds / 1e9 : null;
            bool compute = t.Flops > 0 && t.Flops / t.Bytes >= peakGflops / peakGBps;   // arithmetic intensity against the machine's balance
            double ofRoofline = compute ? gflops!.Value / peakGflops : gbps / peakGBps;
            return new ProfileRow(phase, op, shape, (double)t.Calls / steps, t.Milliseconds / steps, t.Milliseconds / opMs, gflops, gbps,
                compute ? "compute" : "memory", ofRoofline);
        }).OrderByDescending(r => r.MsPerStep).ToList();
        var phases = rows.GroupBy(r => r.Phase).ToDictionary(g => g.Key, g => g.Sum(r => r.MsPerStep));
        return new ProfileReport(name, backend.Name, batch, side, steps, mixedPrecision, gradientCheckpointing,
            use8bitAdam ? "adamw 8-bit" : "adamw", store.Length, stepMs, phases, backend.Memory.PeakBytes / 1048576.0,
            optimizer.StateBytes / 1048576.0, peakGflops, peakGBps, rows);
    }

    /// <summary>What this device attains, measured with its own kernels: the best of 3 f32 GEMMs (1024³, 128³ on the
    /// scalar reference) for compute, and the best of 3 copies of 64 MiB (read and written) for memory.</summary>
    static (double Gflops, double GBps) Roofline(IBackend backend)
    {
        int n = backend.Name == "reference" ? 128 : 1024;
        long words = backend.Name == "reference" ? 1 << 20 : 1 << 24;
        using var a = backend.Allocate(DType.F32, (long)n * n);
        using var b = backend.Allocate(DType.F32, (long)n * n);
        using var c = backend.Allocate(DType.F32, (long)n * n);
        using var src = backend.Allocate(DType.F32, words);
        using var dst = backend.Allocate(DType.F32, words);
        backend.Fill(a, 0.5f);
        backend.Fill(b, 0.25f);
        double Best(Action run)
        {
            run();
            backend.Synchronize();
            double best = double.MaxValue;
            for (int i = 0; i < 3; i++)
            {
                long start = Stopwatch.GetTimestamp();
                run();
                backend.Synchronize();
                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            return best;
        }
        double gemm = Best(() => backend.Gemm(c, a, b, null, new GemmShape(n, n, n)));
        double copy = Best(() => backend.Copy(dst, src));
        return (2.0 * n * n * n / gemm / 1e9, 2.0 * words * 4 / copy / 1e9);
    }

    public static string Markdown(ProfileReport r, int maxRows)
    {
        var inv = CultureInfo.InvariantCulture;
        string F(double v, string format = "F2") => v.ToString(format, inv);
        var s = new StringBuilder();
        s.AppendLine($"# profile: {r.Model}, batch {r.Batch}, {r.Resolution}×{r.Resolution}, {r.Device}, mixed precision {r.MixedPrecision}" +
                     (r.GradientCheckpointing ? ", gradient checkpointing" : ""));
        s.AppendLine();
        s.AppendLine($"{r.Parameters:N0} parameters. One training step: {F(r.StepMs, "F1")} ms (mean of {r.Steps}); " +
                     string.Join(", ", r.PhaseMs.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {F(p.Value, "F1")} ms")) +
                     $" inside ops, {F(r.StepMs - r.PhaseMs.Values.Sum(), "F1")} ms outside them (host code: the tape, allocation, noise); " +
                     $"peak tensor memory {F(r.PeakMib, "F0")} MiB, of which {r.Optimizer} state {F(r.OptimizerStateMib, "F0")} MiB.");
        s.AppendLine($"Roofline of this device, measured with its own kernels: {F(r.PeakGflops, "F0")} GFLOP/s (f32 GEMM), {F(r.PeakGBps, "F1")} GB/s (copy).");
        s.AppendLine();
        s.AppendLine("| op | calls | ms | share |");
        s.AppendLine("|---|---:|---:|---:|");
        foreach (var g in r.Rows.GroupBy(x => x.Op).Select(g => (Op: g.Key, Calls: g.Sum(x => x.CallsPerStep), Ms: g.Sum(x => x.MsPerStep), Share: g.Sum(x => x.Share)))
                     .OrderByDescending(g => g.Ms))
            s.AppendLine($"| {g.Op} | {F(g.Calls, "0.#")} | {F(g.Ms)} | {F(100 * g.Share, "F1")} % |");
        s.AppendLine();
        s.AppendLine("| phase | op | shape | calls | ms | share | GFLOP/s | GB/s | bound (attained) |");
        s.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---|");
        foreach (var x in r.Rows.Take(maxRows))
            s.AppendLine($"| {x.Phase} | {x.Op} | {x.Shape} | {F(x.CallsPerStep, "0.#")} | {F(x.MsPerStep)} | {F(100 * x.Share, "F1")} % | " +
                         $"{(x.Gflops is { } g ? F(g, "F1") : "–")} | {F(x.GBps, "F1")} | {x.Bound} ({F(100 * x.OfRoofline, "F0")} %) |");
        if (r.Rows.Count > maxRows)
            s.AppendLine($"\n{r.Rows.Count - maxRows} more rows, {F(100 * r.Rows.Skip(maxRows).Sum(x => x.Share), "F1")} % of the op time (all of them in --json).");
        return s.ToString();
    }
}
