// Learning-rate schedules as in diffusers' get_scheduler: constant, constant_with_warmup, linear, cosine,
// cosine_with_restarts and polynomial.
namespace DreamBooth.Autograd;

/// <summary>
/// The learning rate as a function of the number of optimizer steps already taken (0 for the first step), exactly
/// the multiplier diffusers' LambdaLR schedules apply to the base rate. With W warm-up and T total steps, warm-up is
/// s / W for s &lt; W (so the first step runs at lr 0), then, with progress p = (s − W) / (T − W):
///   constant               1                                  (no warm-up at all)
///   constant_with_warmup   1
///   linear                 max(0, (T − s) / (T − W))
///   cosine                 max(0, ½(1 + cos(π · 2·0.5 · p)))        (half a cosine: num_cycles = 0.5)
///   cosine_with_restarts   0 once p ≥ 1, else max(0, ½(1 + cos(π · ((NumCycles · p) mod 1))))   (hard restarts)
///   polynomial             (lr − lr_end)·(1 − p)^Power + lr_end, over lr; lr_end / lr after T   (lr_end = 1e-7)
/// </summary>
public sealed record LrSchedule(string Name, float BaseLr, int WarmupSteps, int TotalSteps, int NumCycles = 1, double Power = 1)
{
    public static readonly IReadOnlyList<string> Names =
        ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"];

    /// <summary>diffusers' lr_end of the polynomial schedule.</summary>
    public const double PolynomialEnd = 1e-7;

    /// <summary>A validated schedule; the name is one of <see cref="Names"/> (diffusers' --lr_scheduler values).</summary>
    public static LrSchedule Create(string name, float baseLr, int warmupSteps, int totalSteps, int numCycles = 1, double power = 1)
    {
        if (!Names.Contains(name))
            throw new ArgumentException($"lr schedule: unknown scheduler '{name}'; choose one of {string.Join(", ", Names)}");
        if (!(baseLr >= 0)) throw new ArgumentException($"lr schedule: learning rate must be ≥ 0, got {baseLr}");
        if (warmupSteps < 0 || totalSteps < 0)
            throw new ArgumentException($"lr schedule: warm-up ({warmupSteps}) and total ({totalSteps}) steps must be ≥ 0");
        if (name is "linear" or "cosine" or "cosine_with_restarts" or "polynomial" && totalSteps <= warmupSteps)
            throw new ArgumentException($"lr schedule: {name} needs more total steps ({totalSteps}) than warm-up steps ({warmupSteps})");
        if (name == "cosine_with_restarts" && numCycles < 1)
            throw new ArgumentException($"lr schedule: cosine_with_restarts needs lr_num_cycles ≥ 1, got {numCycles}");
        if (name == "polynomial" && !(baseLr > PolynomialEnd && power > 0))
            throw new ArgumentException($"lr schedule: polynomial needs a learning rate above lr_end {PolynomialEnd} and lr_power > 0, " +
                                        $"got {baseLr} and {power}");
        return new LrSchedule(name, baseLr, warmupSteps, totalSteps, numCycles, power);
    }

    /// <summary>The learning rate for the optimizer step that follows <paramref name="step"/> completed steps.</summary>
    public float LrAt(int step) => (float)(BaseLr * Factor(step));

    /// <summary>The multiplier of the base rate after <paramref name="step"/> steps.</summary>
    public double Factor(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "lr schedule: step must be ≥ 0");
        if (Name == "constant") return 1;
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Name switch
        {
            "constant_with_warmup" => 1,
            "linear" => Math.Max(0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps)),
            "cosine" => Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * 2 * CosineCycles * progress))),
            "cosine_with_restarts" => progress >= 1 ? 0 : Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * (NumCycles * progress % 1.0)))),
            "polynomial" => step > TotalSteps ? PolynomialEnd / BaseLr
                : ((BaseLr - PolynomialEnd) * Math.Pow(1 - progress, Power) + PolynomialEnd) / BaseLr,
            _ => throw new InvalidOperationException($"lr schedule: unknown scheduler '{Name}'"),
        };
    }

    /// <summary>diffusers' default num_cycles for cosine: half a period, from 1 down to 0.</summary>
    const double CosineCycles = 0.5;
}
