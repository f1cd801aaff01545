// Finite-difference gradient checks in double for the reference kernels.
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

public static class GradCheck
{
    /// <summary>
    /// Checks analytic gradients of L(inputs) = Σ f(inputs) · weights against central differences.
    /// <paramref name="forward"/> maps the inputs to the output; <paramref name="backward"/> maps (inputs, dL/doutput) to
    /// dL/dinput for each input (null for an input that is not differentiated).
    /// </summary>
    public static void Check(double[][] inputs, Func<double[][], double[]> forward,
        Func<double[][], double[], double[]?[]> backward, string what, double h = 1e-6, double tol = 1e-6, int seed = 7)
    {
        double[] output = forward(inputs);
        double[] weights = TestData.Uniform(seed, output.Length);
        double[]?[] analytic = backward(inputs, weights);
        for (int t = 0; t < inputs.Length; t++)
        {
            if (analytic[t] is not { } grad) continue;
            Assert.That(grad.Length, Is.EqualTo(inputs[t].Length), $"{what}: gradient length of input {t}");
            for (int i = 0; i < inputs[t].Length; i++)
            {
                double saved = inputs[t][i];
                inputs[t][i] = saved + h;
                double plus = Dot(forward(inputs), weights);
                inputs[t][i] = saved - h;
                double minus = Dot(forward(inputs), weights);
                inputs[t][i] = saved;
                double numeric = (plus - minus) / (2 * h);
                double err = Math.Abs(numeric - grad[i]);
                if (err > tol * (1 + Math.Abs(numeric)))
                    Assert.Fail($"{what}: d/d input{t}[{i}] analytic {grad[i]:R}, numeric {numeric:R}");
            }
        }
    }

    static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
