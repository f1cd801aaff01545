// Finite-difference checks of the autograd graph: perturb each input element, compare with what Backward produced.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

/// <summary>
/// Checks dL/dinput (and dL/dparameter, given a store) from the tape against central differences of L = Σ w·f(inputs) with fixed random weights w.
/// The kernels' own backward math is checked in double in tests/Kernels; these checks prove the wiring (which
/// gradient goes where, transposes, broadcasting, accumulation). Tensors are f32, so differences use a step of
/// 1e-2 on the reference backend (which accumulates in double) and L is summed in double on the host: the
/// truncation error is O(h²) ≈ 1e-4 and the f32 rounding of outputs ≈ 1e-7·|L|/h, hence the default tolerance.
/// </summary>
public static class TensorGradCheck
{
    public const double DefaultTolerance = 2e-3;

    /// <param name="samples">when positive, the number of elements checked per tensor (a seeded random choice) instead
    /// of all of them, for layers too large to perturb element by element</param>
    /// <param name="parameters">a module's parameters that f reads: every trainable one is checked too, its values
    /// perturbed in place in the store</param>
    public static void Check(IBackend backend, Func<Tensor[], Tensor> f, (float[] Values, int[] Shape)[] inputs, string what,
        double h = 1e-2, double tol = DefaultTolerance, int seed = 11, int samples = 0, ParameterStore? parameters = null)
    {
        using var scope = new TensorScope();
        var leaves = inputs.Select(i => Tensor.FromArray(backend, (float[])i.Values.Clone(), i.Shape)).ToArray();
        foreach (var t in leaves) t.RequiresGrad = true;
        parameters?.ZeroGrad();
        var y = f(leaves);
        var w = TestData.Uniform(seed, y.Length);
        var loss = F.Sum(F.Mul(y, Tensor.FromArray(backend, TestData.ToFloat(w), y.Shape.ToArray())));
        loss.Backward();
        var rng = new Random(seed);

        for (int t = 0; t < inputs.Length; t++)
        {
            var analytic = leaves[t].Grad?.ToArray() ?? new float[leaves[t].Length];
            var values = (float[])inputs[t].Values.Clone();
            foreach (int i in Pick(values.Length, samples, rng))
            {
                float saved = values[i];
                values[i] = saved + (float)h;
                double plus = Evaluate(backend, f, inputs, t, values, w);
                values[i] = saved - (float)h;
                double minus = Evaluate(backend, f, inputs, t, values, w);
                values[i] = saved;
                double numeric = (plus - minus) / (2 * h);
                if (Math.Abs(numeric - analytic[i]) > tol * (1 + Math.Abs(numeric)))
                    Assert.Fail($"{what}: dL/d input{t}[{i}] from the tape is {analytic[i]:R}, finite differences give {numeric:R}");
            }
        }

        foreach (var (name, p) in parameters?.Named.Where(n => n.Parameter.RequiresGrad) ?? [])
        {
            var analytic = p.Value.Grad!.ToArray();
            var values = p.Value.ToArray();
            foreach (int i in Pick(values.Length, samples, rng))
            {
                var element = p.Value.Storage.Slice(i, 1);
                backend.Upload<float>(element, [values[i] + (float)h]);
                double plus = Evaluate(backend, f, inputs, -1, [], w);
                backend.Upload<float>(element, [values[i] - (float)h]);
                double minus = Evaluate(backend, f, inputs, -1, [], w);
                backend.Upload<float>(element, [values[i]]);
                double numeric = (plus - minus) / (2 * h);
                if (Math.Abs(numeric - analytic[i]) > tol * (1 + Math.Abs(numeric)))
                    Assert.Fail($"{what}: dL/d {name}[{i}] from the tape is {analytic[i]:R}, finite differences give {numeric:R}");
            }
        }
    }

    /// <summary>Every index below length, or <paramref name="samples"/> distinct ones drawn from rng.</summary>
    static IEnumerable<int> Pick(int length, int samples, Random rng)
    {
        if (samples <= 0 || samples >= length) return Enumerable.Range(0, length);
        var chosen = new HashSet<int>();
        while (chosen.Count < samples) chosen.Add(rng.Next(length));
        return chosen.Order();
    }

    /// <summary>Σ w·f(inputs) without the tape, input <paramref name="which"/> (if any, −1 for none) replaced.</summary>
    static double Evaluate(IBackend backend, Func<Tensor[], Tensor> f, (float[] Values, int[] Shape)[] inputs, int which,
        float[] replaced, double[] w)
    {
        using var scope = new TensorScope();
        using var noGrad = Tape.NoGrad();
        var ts = inputs.Select((x, j) => Tensor.FromArray(backend, j == which ? replaced : x.Values, x.Shape)).ToArray();
        var y = f(ts).ToArray();
        double sum = 0;
        for (int i = 0; i < y.Length; i++) sum += w[i] * y[i];
        return sum;
    }

    /// <summary>An input for <see cref="Check"/>: seeded uniform values in [-scale, scale).</summary>
    public static (float[] Values, int[] Shape) Input(int seed, double scale, params int[] shape) =>
        (TestData.ToFloat(TestData.Uniform(seed, Tensor.ShapeLength(shape), scale)), shape);
}
