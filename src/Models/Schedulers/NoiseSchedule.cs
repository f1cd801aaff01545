// The forward diffusion process: betas, ᾱ (alphas_cumprod), and the coefficients training mixes x0 and ε with.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;

namespace DreamBooth.Models.Schedulers;

/// <summary>
/// x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε for integer t in [0, NumTrainTimesteps), with ᾱ_t = Π_{s≤t} (1 − β_s).
/// The coefficients are double on the host; <see cref="AddNoise"/> and <see cref="Target"/> apply them per sample to
/// device tensors.
/// </summary>
public sealed class NoiseSchedule
{
    public int NumTrainTimesteps => _betas.Length;
    public PredictionType PredictionType { get; }
    public IReadOnlyList<double> Betas => _betas;                   // (T) β_t
    public IReadOnlyList<double> Alphas => _alphas;                 // (T) α_t = 1 − β_t
    public IReadOnlyList<double> AlphasCumprod => _alphasCumprod;   // (T) ᾱ_t = α_0·α_1·…·α_t

    readonly double[] _betas, _alphas, _alphasCumprod;

    public NoiseSchedule(double[] betas, PredictionType predictionType)
    {
        if (betas.Length == 0) throw new ArgumentException("noise schedule: no betas (num_train_timesteps must be ≥ 1)");
        for (int t = 0; t < betas.Length; t++)
            if (!(betas[t] > 0 && betas[t] < 1))
                throw new ArgumentException($"noise schedule: beta[{t}] = {betas[t]} is outside (0, 1)");
        _betas = (double[])betas.Clone();
        PredictionType = predictionType;
        _alphas = Array.ConvertAll(_betas, b => 1 - b);
        _alphasCumprod = new double[_betas.Length];
        double product = 1;
        for (int t = 0; t < _betas.Length; t++) _alphasCumprod[t] = product *= _alphas[t];
    }

    public static NoiseSchedule FromConfig(SchedulerConfig p)
    {
        var prediction = ScheduleNames.ParsePredictionType(p.PredictionType);
        if (p.TrainedBetas is { } trained) return new NoiseSchedule(trained, prediction);
        if (p.NumTrainTimesteps < 1)
            throw new ArgumentException($"scheduler config: num_train_timesteps {p.NumTrainTimesteps} must be ≥ 1");
        double[] betas = ScheduleNames.ParseBetaSchedule(p.BetaSchedule) switch
        {
            BetaSchedule.Linear => Linspace(p.BetaStart, p.BetaEnd, p.NumTrainTimesteps),
            BetaSchedule.ScaledLinear => Array.ConvertAll(
                Linspace(Math.Sqrt(p.BetaStart), Math.Sqrt(p.BetaEnd), p.NumTrainTimesteps), s => s * s),
            _ => CosineBetas(p.NumTrainTimesteps),
        };
        return new NoiseSchedule(betas, prediction);
    }

    /// <summary>n evenly spaced values from start to end inclusive (torch.linspace).</summary>
    public static double[] Linspace(double start, double end, int n)
    {
        var values = new double[n];
        for (int i = 0; i < n; i++) values[i] = n == 1 ? start : start + (end - start) * i / (n - 1);
        return values;
    }

    /// <summary>
    /// Glide's cosine schedule (squaredcos_cap_v2): ᾱ(s) = cos²((s + 0.008)/1.008 · π/2) for s in [0, 1], and
    /// β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), 0.999) so the last steps cannot reach β = 1.
    /// </summary>
    public static double[] CosineBetas(int n, double maxBeta = 0.999)
    {
        static double AlphaBar(double s) { double c = Math.Cos((s + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        var betas = new double[n];
        for (int i = 0; i < n; i++)
            betas[i] = Math.Min(1 - AlphaBar((double)(i + 1) / n) / AlphaBar((double)i / n), maxBeta);
        return betas;
    }

    /// <summary>x_t = X0·x0 + Noise·ε: (√ᾱ_t, √(1−ᾱ_t)), diffusers' add_noise.</summary>
    public MixCoefficients AddNoiseCoefficients(int t)
    {
        double abar = AlphaCumprod(t);
        return new MixCoefficients(Math.Sqrt(abar), Math.Sqrt(1 - abar));
    }

    /// <summary>v = X0·x0 + Noise·ε: (−√(1−ᾱ_t), √ᾱ_t), diffusers' get_velocity.</summary>
    public MixCoefficients VelocityCoefficients(int t)
    {
        double abar = AlphaCumprod(t);
        return new MixCoefficients(-Math.Sqrt(1 - abar), Math.Sqrt(abar));
    }

    /// <summary>The training target for this schedule's prediction type: ε, v, or x0.</summary>
    public MixCoefficients TargetCoefficients(int t) => PredictionType switch
    {
        PredictionType.Epsilon => new MixCoefficients(0, 1),
        PredictionType.VPrediction => VelocityCoefficients(t),
        _ => new MixCoefficients(1, 0),
    };

    /// <summary>diffusers' add_noise on a batch: x_t[i] = √ᾱ_t[i]·x0[i] + √(1−ᾱ_t[i])·ε[i], one timestep per sample.</summary>
    public Tensor AddNoise(Tensor x0,   // (N, ...)
        Tensor noise,                   // (N, ...)
        int[] timesteps) =>             // (N) → (N, ...)
        Mix(AddNoiseCoefficients, x0, noise, timesteps);

    /// <summary>What the model learns to predict for each sample: ε (epsilon), v (v_prediction) or x0 (sample).</summary>
    public Tensor Target(Tensor x0,     // (N, ...)
        Tensor noise,                   // (N, ...)
        int[] timesteps) =>             // (N) → (N, ...)
        PredictionType == PredictionType.Epsilon ? noise : Mix(TargetCoefficients, x0, noise, timesteps);

    /// <summary>a[i]·x0[i] + b[i]·ε[i] with (a, b) = coefficients(t[i]): two broadcast multiplies by (N, 1, …, 1).</summary>
    static Tensor Mix(Func<int, MixCoefficients> coefficients, Tensor x0, Tensor noise, int[] timesteps)
    {
        int n = x0.Dim(0);
        if (!x0.Shape.SequenceEqual(noise.Shape) || timesteps.Length != n)
            throw new ArgumentException($"noise schedule: x0 {x0}, noise {noise} and {timesteps.Length} timesteps do not match");
        var c = Array.ConvertAll(timesteps, t => coefficients(t));
        int[] perSample = [n, .. Enumerable.Repeat(1, x0.Rank - 1)];
        var a = Tensor.FromArray(x0.Backend, Array.ConvertAll(c, m => (float)m.X0), perSample);
        var b = Tensor.FromArray(x0.Backend, Array.ConvertAll(c, m => (float)m.Noise), perSample);
        return F.Add(F.Mul(x0, a), F.Mul(noise, b));
    }

    /// <summary>Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), the quantity min-SNR loss weighting clips.</summary>
    public double Snr(int t)
    {
        double abar = AlphaCumprod(t);
        return abar / (1 - abar);
    }

    /// <summary>ᾱ_t with a clear error for a timestep outside the trained range.</summary>
    public double AlphaCumprod(int t)
    {
        if ((uint)t >= (uint)NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(t), t, $"timestep must be in [0, {NumTrainTimesteps})");
        return _alphasCumprod[t];
    }
}
