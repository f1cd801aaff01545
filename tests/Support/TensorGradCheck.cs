// Finite-difference checks of the autograd graph: perturb each input element, compare with what Backward produced.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

/// <summary>
/// Checks dL/dinput from the tape against central differences of L = Σ w·f(inputs) with fixed random weights w.
/// The kernels' own backward math is checked in double in tests/Kernels; these checks prove the wiring (which
/// gradient goes where, transposes, broadcasting, accumulation). Tensors are f32, so differences use a step of
/// 1e-2 on the reference backend (which accumulates in double) and L is summed in double on the host: the
/// truncation error is O(h²) ≈ 1e-4 and the f32 rounding of outputs ≈ 1e-7·|L|/h, hence the default tolerance.
/// </summary>
public static class TensorGradCheck
{
    public const double DefaultTolerance = 2e-3;

    public static void Check(IBackend backend, Func<Tensor[], Tensor> f, (float[] Values, int[] Shape)[] inputs, string what,
        double h = 1e-2, double tol = DefaultTolerance, int seed = 11)
    {
        using var scope = new TensorScope();
        var leaves = inputs.Select(i => Tensor.FromArray(backend, (float[])i.Values.Clone(), i.Shape)).ToArray();
        foreach (var t in leaves) t.RequiresGrad = true;
        var y = f(leaves);
        var w = TestData.Uniform(seed, y.Length);
        var loss = F.Sum(F.Mul(y, Tensor.FromArray(backend, TestData.ToFloat(w), y.Shape.ToArray())));
        loss.Backward();

        for (int t = 0; t < inputs.Length; t++)
        {
            var analytic = leaves[t].Grad?.ToArray() ?? new float[leaves[t].Length];
            var values = (float[])inputs[t].Values.Clone();
            for (int i = 0; i < values.Length; i++)
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
    }

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
