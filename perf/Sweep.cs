// The sweep harness: builds each case on the cpu tier, checks it against the reference, then times it (median of N).
using System.Diagnostics;
using DreamBooth.Kernels;

namespace DreamBooth.Perf;

static class Sweep
{
    /// <summary>Relative L2 error allowed between the cpu tier and the reference: f32 accumulation over long sums.</summary>
    const double CheckTolerance = 1e-4;

    public static void Single(string command, Options o)
    {
        var cases = command switch
        {
            "gemm" => InputTypes(o).Select(t => Cases.Gemm(o.At(0, "M"), o.At(1, "N"), o.At(2, "K"), o.At(3, "transA", 0) != 0,
                o.At(4, "transB", 0) != 0, t)).ToArray(),
            "conv" => Both(bwd => Cases.Conv(o.At(0, "N"), o.At(1, "C"), o.At(2, "H"), o.At(3, "W"), o.At(4, "OutC"), o.At(5, "K"),
                o.At(6, "stride", 1), o.At(7, "pad", o.At(5, "K") / 2), bwd)),
            "attention" => Both(bwd => Cases.Attention(o.At(0, "B"), o.At(1, "H"), o.At(2, "Lq"), o.At(3, "Lk"), o.At(4, "D"),
                o.At(5, "causal", 0) != 0, bwd)),
            "groupnorm" => Both(bwd => Cases.GroupNorm(o.At(0, "N"), o.At(1, "C"), o.At(2, "H"), o.At(3, "W"), o.At(4, "G"), bwd)),
            "groupnorm-silu" => [.. from bwd in new[] { false, true } from fused in new[] { false, true }
                                   select Cases.GroupNormSilu(o.At(0, "N"), o.At(1, "C"), o.At(2, "H"), o.At(3, "W"), o.At(4, "G"), bwd, fused)],
            "layernorm" => Both(bwd => Cases.LayerNorm(o.At(0, "rows"), o.At(1, "dim"), bwd)),
            "geglu" => Both(bwd => Cases.Geglu(o.At(0, "rows"), o.At(1, "dim"), bwd)),
            "activation" => Both(bwd => Cases.Activation(Activation(o), o.At(0, "N"), bwd)),
            "adamw" => [Cases.AdamW(o.At(0, "N")), Cases.AdamW8bit(o.At(0, "N"))],
            _ => throw new ArgumentException($"unknown sweep '{command}'"),
        };
        Table(cases, o, peer: null);
    }

    public static void Ops(Options o)
    {
        string? peerFile = o.Text("peer");
        Table(Cases.PeerOps().ToArray(), o, peerFile == null ? null : PeerTable.Read(peerFile));
    }

    /// <summary>--op silu|gelu|gelutanh|quickgelu (default silu).</summary>
    static UnaryOp Activation(Options o) => Enum.TryParse<UnaryOp>(o.Text("op") ?? "silu", ignoreCase: true, out var op) && Enum.IsDefined(op)
        ? op : throw new ArgumentException($"--op '{o.Text("op")}' is not one of {string.Join(", ", Enum.GetNames<UnaryOp>()).ToLowerInvariant()}");

    static Case[] Both(Func<bool, Case> make) => [make(false), make(true)];

    /// <summary>--dtype f32,f16,bf16: the GEMM input types to time, one row each (default f32).</summary>
    static DType[] InputTypes(Options o) => (o.Text("dtype") ?? "f32").Split(',').Select(name =>
        name switch
        {
            "f32" => DType.F32,
            "f16" => DType.F16,
            "bf16" => DType.BF16,
            _ => throw new ArgumentException($"--dtype '{name}' is not one of f32, f16, bf16"),
        }).ToArray();

    static void Table(Case[] cases, Options o, IReadOnlyDictionary<(string, string), double>? peer)
    {
        using var cpu = new DreamBooth.Kernels.Cpu.CpuBackend(vector512: !o.Flag("vector256"));
        Console.WriteLine($"cpu tier, {Environment.ProcessorCount} cores, {(cpu.UseVector512 ? "Vector512" : "Vector256")}; " +
                          $"median of {o.Reps} runs after at least {WarmupMs} ms of warm-up, its last {QuietMs} ms with nothing compiled; check = relative L2 error against the reference tier");
        string peerHead = peer == null ? "" : $" {"peer ms",9} {"speed-up",8}";
        Console.WriteLine($"{"op",-26} {"shape",-44} {"median ms",10} {"min ms",9} {"GFLOP/s",8} {"check",9}{peerHead}");
        foreach (var c in cases)
        {
            using var work = c.Build(cpu);
            string check = o.Check ? CheckAgainstReference(c, work) : "-";
            var (median, min) = Time(work.Run, o.Reps);
            string gflops = c.Flops > 0 ? $"{c.Flops / (median * 1e6),8:F1}" : $"{"-",8}";
            string peerCols = "";
            if (peer != null)
                peerCols = peer.TryGetValue((c.Op, c.Shape), out double p) ? $" {p,9:F3} {p / median,7:F2}x" : $" {"-",9} {"-",8}";
            Console.WriteLine($"{c.Op,-26} {c.Shape,-44} {median,10:F3} {min,9:F3} {gflops} {check,9}{peerCols}");
        }
    }

    /// <summary>Runs the work once on the cpu tier and on the reference tier from the same inputs; worst relative L2 error.</summary>
    static string CheckAgainstReference(Case c, Work cpuWork)
    {
        using var reference = Backends.Create("reference");
        using var refWork = c.Build(reference);
        cpuWork.Run();
        refWork.Run();
        double worst = 0;
        for (int i = 0; i < cpuWork.Outputs.Count; i++)
        {
            var got = new float[cpuWork.Outputs[i].Length];
            var want = new float[got.Length];
            cpuWork.Outputs[i].Backend.Download<float>(got, cpuWork.Outputs[i]);
            reference.Download<float>(want, refWork.Outputs[i]);
            double err = 0, norm = 0;
            for (int j = 0; j < got.Length; j++) { err += Math.Pow(got[j] - want[j], 2); norm += (double)want[j] * want[j]; }
            worst = Math.Max(worst, Math.Sqrt(err / Math.Max(norm, 1e-30)));
        }
        if (!(worst <= CheckTolerance))
            throw new InvalidOperationException($"{c.Op} {c.Shape}: cpu differs from the reference by {worst:E2} (relative L2)");
        return $"{worst:E1}";
    }

    /// <summary>Warm-up: at least 2 runs and this long, then until the JIT has been quiet for QuietMs (Warmup.Run; with no
    /// call-counting delay: Perf.csproj).</summary>
    const double WarmupMs = 2000, QuietMs = 500, MaxWarmupMs = 20000;

    public static (double MedianMs, double MinMs) Time(Action run, int reps)
    {
        Warmup.Run(_ => run(), 2, TimeSpan.FromMilliseconds(WarmupMs), TimeSpan.FromMilliseconds(QuietMs),
            TimeSpan.FromMilliseconds(MaxWarmupMs));
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return (times[reps / 2], times[0]);
    }
}

/// <summary>Reads the peer's `ops` output: op name (26 columns), shape (next 41), then median ms.</summary>
static class PeerTable
{
    public static IReadOnlyDictionary<(string, string), double> Read(string path)
    {
        if (!File.Exists(path)) throw new ArgumentException($"peer table '{path}' does not exist (run the peer's `ops` command into it)");
        var rows = new Dictionary<(string, string), double>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length < 68) continue;
            var fields = line[67..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 0 && double.TryParse(fields[0], System.Globalization.CultureInfo.InvariantCulture, out double ms))
                rows[(line[..26].Trim(), line[27..67].Trim())] = ms;
        }
        if (rows.Count == 0) throw new ArgumentException($"peer table '{path}' has no rows in the peer's `ops` format");
        return rows;
    }
}
