// The sampler interface: inference timesteps from a spacing rule, and one linear update per step.
namespace DreamBooth.Models.Schedulers;

/// <summary>
/// A sampling loop over i = 0 … NumInferenceSteps − 1 reads, for a sample x (started as InitNoiseSigma·N(0, 1)):
///   model_output = unet(ScaleModelInput(i)·x, Timesteps[i])
///   x = Sample·x + ModelOutput·model_output + Noise·z        with Step(i)'s coefficients
/// Steps are addressed by index, not by timestep value, so a repeated timestep is never ambiguous.
/// </summary>
public abstract class Sampler(NoiseSchedule schedule, TimestepSpacing spacing, int stepsOffset)
{
    public NoiseSchedule Schedule { get; } = schedule;
    public TimestepSpacing Spacing { get; } = spacing;
    public int StepsOffset { get; } = stepsOffset;

    /// <summary>The timesteps fed to the UNet, from most to least noisy; empty until SetTimesteps.</summary>
    public IReadOnlyList<double> Timesteps => _timesteps;

    double[] _timesteps = [];

    public int NumInferenceSteps => _timesteps.Length;

    /// <summary>Standard deviation of the initial noise.</summary>
    public virtual double InitNoiseSigma => 1;

    public void SetTimesteps(int numInferenceSteps)
    {
        int numTrain = Schedule.NumTrainTimesteps;
        if (numInferenceSteps < 1 || numInferenceSteps > numTrain)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                $"the number of inference steps must be in [1, {numTrain}] (num_train_timesteps)");
        double[] timesteps = SpacedTimesteps(Spacing, numTrain, numInferenceSteps, StepsOffset);
        if (RoundsTimesteps) timesteps = Array.ConvertAll(timesteps, t => Math.Round(t));   // half to even, as numpy
        if (timesteps[0] > numTrain - 1 || timesteps[^1] < 0)
            throw new ArgumentException($"steps_offset {StepsOffset} with {numInferenceSteps} {Spacing} steps gives " +
                                        $"timesteps {timesteps[0]} … {timesteps[^1]}, outside the trained [0, {numTrain - 1}]");
        _timesteps = timesteps;
        OnTimestepsSet();
    }

    /// <summary>The factor the sample is multiplied by before it goes into the UNet at step i.</summary>
    public virtual double ScaleModelInput(int i) { CheckStep(i); return 1; }

    /// <summary>The coefficients of x_prev = Sample·x_t + ModelOutput·model_output + Noise·z at step i.</summary>
    public abstract UpdateCoefficients Step(int i);

    /// <summary>Whether timesteps are whole numbers (DDPM, DDIM) or may fall between trained ones (Euler).</summary>
    protected virtual bool RoundsTimesteps => true;

    protected virtual void OnTimestepsSet() { }

    /// <summary>The timestep step i moves to: the next in the list, or −1 after the last.</summary>
    protected int PreviousTimestep(int i) => i + 1 < _timesteps.Length ? (int)_timesteps[i + 1] : -1;

    /// <summary>x̂0 = A·x_t + B·model_output at a timestep with cumulative ᾱ (x_t = √ᾱ·x0 + √(1−ᾱ)·ε).</summary>
    protected static (double A, double B) PredictedOriginal(PredictionType prediction, double abar) => prediction switch
    {
        PredictionType.Epsilon => (1 / Math.Sqrt(abar), -Math.Sqrt(1 - abar) / Math.Sqrt(abar)),
        PredictionType.VPrediction => (Math.Sqrt(abar), -Math.Sqrt(1 - abar)),
        _ => (0, 1),
    };

    protected void CheckStep(int i)
    {
        if (_timesteps.Length == 0) throw new InvalidOperationException("call SetTimesteps before sampling");
        if ((uint)i >= (uint)_timesteps.Length)
            throw new ArgumentOutOfRangeException(nameof(i), i, $"step index must be in [0, {_timesteps.Length})");
    }

    /// <summary>
    /// diffusers' timestep_spacing, descending, before rounding:
    ///   leading:  k·(T div n) + steps_offset for k = n−1 … 0      (SD 1.5, 50 steps: 981, 961, …, 1)
    ///   trailing: T − k·(T/n) − 1 for k = 0 … while positive       (999, 979, …, 19)
    ///   linspace: n values from T − 1 down to 0                    (999, …, 0)
    /// </summary>
    public static double[] SpacedTimesteps(TimestepSpacing spacing, int numTrain, int n, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Leading:
            {
                int ratio = numTrain / n;
                var t = new double[n];
                for (int k = 0; k < n; k++) t[n - 1 - k] = (double)k * ratio + stepsOffset;
                return t;
            }
            case TimestepSpacing.Trailing:
            {
                // diffusers takes numpy's arange(T, 0, −T/n), whose length ceil(T / (T/n)) rounds up to n + 1 for
                // some n (61, 103, … at T = 1000), adding a timestep −1; exactly n values are taken here.
                double ratio = (double)numTrain / n;
                var t = new double[n];
                for (int k = 0; k < n; k++) t[k] = Math.Round(numTrain - k * ratio) - 1;
                return t;
            }
            default:
            {
                double[] t = NoiseSchedule.Linspace(0, numTrain - 1, n);
                Array.Reverse(t);
                return t;
            }
        }
    }
}
