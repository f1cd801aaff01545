// The training log: logs/train.jsonl (one line per optimizer step) and logs/loss.png, the loss curve drawn from it.
using System.Text.Json;
using System.Text.Json.Nodes;
using DreamBooth.Models.Formats;

namespace DreamBooth.Trainer;

/// <summary>What one optimizer step logs. Losses are means over its micro-batches; PriorLoss is null without prior
/// preservation, LossScale without fp16.</summary>
public sealed record StepRecord(int Step, int Epoch, double Loss, double InstanceLoss, double? PriorLoss, double Lr,
    double GradNorm, double? LossScale, bool Skipped, double ItPerSecond, double MemoryMiB);

public sealed class TrainLog : IDisposable
{
    readonly string _path;
    readonly StreamWriter _writer;

    TrainLog(string path, StreamWriter writer) => (_path, _writer) = (path, writer);

    public string Folder => Path.GetDirectoryName(_path)!;

    /// <summary>Opens output_dir/logs/train.jsonl for a run that starts after <paramref name="completedSteps"/> steps: lines
    /// of later steps (from a run that went on past the checkpoint it is resumed from) are dropped first, so the log
    /// reads as one uninterrupted run.</summary>
    public static TrainLog Open(string outputDir, int completedSteps)
    {
        string dir = Path.Combine(outputDir, "logs");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "train.jsonl");
        if (File.Exists(path))
        {
            var kept = File.ReadLines(path).Where(line => StepOf(line) is { } s && s <= completedSteps).ToList();
            AtomicFile.Write(path, temp => File.WriteAllLines(temp, kept));
        }
        return new TrainLog(path, new StreamWriter(path, append: true) { AutoFlush = true });
    }

    public void Write(StepRecord r)
    {
        var line = new JsonObject
        {
            ["step"] = r.Step, ["epoch"] = r.Epoch, ["loss"] = Finite(r.Loss), ["instance_loss"] = Finite(r.InstanceLoss),
            ["prior_loss"] = r.PriorLoss is { } p ? Finite(p) : null, ["lr"] = r.Lr, ["grad_norm"] = Finite(r.GradNorm),
            ["loss_scale"] = r.LossScale, ["skipped"] = r.Skipped, ["it_per_s"] = Math.Round(r.ItPerSecond, 4),
            ["memory_mib"] = Math.Round(r.MemoryMiB, 1),
        };
        _writer.WriteLine(line.ToJsonString());
    }

    /// <summary>JSON has no NaN or Inf: a non-finite value (the loss of a step skipped under fp16) is logged as null.</summary>
    static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    /// <summary>Redraws logs/loss.png: the total, instance and prior losses against the step, from the whole log.</summary>
    public void Plot()
    {
        var rows = File.ReadLines(_path).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        if (rows.Count == 0) return;
        var plot = new ScottPlot.Plot();
        double[] steps = rows.Select(r => r["step"]!.GetValue<double>()).ToArray();
        void Line(string key, string label)
        {
            var values = rows.Select(r => r[key] is { } v ? v.GetValue<double>() : double.NaN).ToArray();
            if (values.All(double.IsNaN)) return;
            var line = plot.Add.ScatterLine(steps, values);
            line.LegendText = label;
        }
        Line("loss", "loss");
        Line("instance_loss", "instance");
        Line("prior_loss", "prior (class)");
        plot.XLabel("step");
        plot.YLabel("loss (mean over the step's micro-batches)");
        plot.ShowLegend();
        byte[] png = plot.GetImageBytes(900, 500, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(Path.Combine(Folder, "loss.png"), temp => File.WriteAllBytes(temp, png));
    }

    static int? StepOf(string line)
    {
        try { return JsonNode.Parse(line)?["step"]?.GetValue<int>(); }
        catch (JsonException) { return null; }   // a line cut off by a killed run
    }

    public void Dispose() => _writer.Dispose();
}
