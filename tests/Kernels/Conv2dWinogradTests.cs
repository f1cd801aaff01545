// The cpu tier's Winograd kernels, F(4×4, 3×3) and F(2×2, 3×3), called directly at every transform width and GEMM width,
// against the double reference: the backend sends only large enough convolutions there (CpuBackend.Winograd), so small
// ones test them.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Cpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Tests.Kernels;

[TestFixture("F(4×4), 8 lanes, 6×16 GEMM")]
[TestFixture("F(4×4), 8 lanes, 6×64 GEMM")]
[TestFixture("F(4×4), 16 lanes, 6×64 GEMM")]
[TestFixture("F(2×2), 8 lanes, 6×16 GEMM")]
[TestFixture("F(2×2), 8 lanes, 6×64 GEMM")]
[TestFixture("F(2×2), 16 lanes, 6×64 GEMM")]
public unsafe class Conv2dWinogradTests(string variant)
{
    // Conv2dTests' bounds: the same sums, in another order (36 or 16 products of transformed values per channel).
    const double AtolPerSqrtTerm = 1e-5, Rtol = 1e-4;

    static double Atol(long terms) => 1e-6 + AtolPerSqrtTerm * Math.Sqrt(terms);

    // 3×3 stride 1, padding 0 to 2: one tile and a partial one, rows of more than 16 tiles (full and partial groups of
    // 16 or 8 lanes), odd and non-square sizes, depth past one GEMM slab of 256, several images, channel counts that fill
    // F(2×2)'s lanes and that do not.
    static readonly ConvShape[] Shapes =
    [
        new(1, 3, 5, 7, 4, 3, 3, 1, 1), new(2, 3, 8, 8, 5, 3, 3, 1, 0), new(2, 32, 12, 12, 32, 3, 3, 1, 1),
        new(1, 8, 40, 40, 8, 3, 3, 1, 1), new(1, 2, 9, 70, 3, 3, 3, 1, 1), new(2, 3, 7, 66, 4, 3, 3, 1, 2),
        new(1, 260, 6, 6, 7, 3, 3, 1, 1), new(3, 32, 8, 8, 48, 3, 3, 1, 1), new(2, 17, 5, 9, 33, 3, 3, 1, 2),
    ];

    bool Small => variant.StartsWith("F(2×2)");
    bool Lanes16 => variant.Contains("16 lanes");
    bool WideGemm => variant.EndsWith("6×64 GEMM");

    [SetUp]
    public void NeedsTheInstructions()
    {
        if (!Avx2.IsSupported || (Lanes16 || WideGemm) && !Avx512F.IsSupported)
            Assert.Ignore($"{variant} needs {(Lanes16 || WideGemm ? "AVX-512" : "AVX2")}, which this machine lacks");
    }

    [Test]
    public void Forward([ValueSource(nameof(Shapes))] ConvShape s)
    {
        double[] x = TestData.Uniform(1, s.InputLength), w = TestData.Uniform(2, s.WeightLength), b = TestData.Uniform(3, s.OutC);
        var expected = new double[s.OutputLength];
        Conv2dReference.Forward(expected, x, w, b, s);
        float[] fx = TestData.ToFloat(x), fw = TestData.ToFloat(w), fb = TestData.ToFloat(b), y = new float[s.OutputLength];
        fixed (float* py = y, px = fx, pw = fw, pb = fb)
            if (Small && Lanes16) Winograd2x2<V512>.Forward(py, px, pw, pb, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Small) Winograd2x2<V256>.Forward(py, px, pw, pb, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Lanes16) Winograd3x3<V512>.Forward(py, px, pw, pb, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else Winograd3x3<V256>.Forward(py, px, pw, pb, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
        Close.Assert(y, expected, Atol((long)s.InC * 9), Rtol, $"winograd {variant} forward {s}");
    }

    [Test]
    public void GradInput([ValueSource(nameof(Shapes))] ConvShape s)
    {
        double[] dy = TestData.Uniform(5, s.OutputLength), w = TestData.Uniform(2, s.WeightLength);
        var expected = new double[s.InputLength];
        Conv2dReference.GradInput(expected, dy, w, s);
        float[] fdy = TestData.ToFloat(dy), fw = TestData.ToFloat(w), dx = new float[s.InputLength];
        fixed (float* pdx = dx, pdy = fdy, pw = fw)
            if (Small && Lanes16) Winograd2x2<V512>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Small) Winograd2x2<V256>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Lanes16) Winograd3x3<V512>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else Winograd3x3<V256>.GradInput(pdx, pdy, pw, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
        Close.Assert(dx, expected, Atol((long)s.OutC * 9), Rtol, $"winograd {variant} grad input {s}");
    }

    [Test]
    public void GradWeightAccumulates([ValueSource(nameof(Shapes))] ConvShape s)
    {
        double[] dy = TestData.Uniform(5, s.OutputLength), x = TestData.Uniform(1, s.InputLength), dw = TestData.Uniform(7, s.WeightLength);
        double[] expected = (double[])dw.Clone(), unusedBias = new double[s.OutC];
        Conv2dReference.GradWeight(expected, unusedBias, dy, x, s);
        float[] fdy = TestData.ToFloat(dy), fx = TestData.ToFloat(x), fdw = TestData.ToFloat(dw);
        fixed (float* pdw = fdw, pdy = fdy, px = fx)
            if (Small && Lanes16) Winograd2x2<V512>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Small) Winograd2x2<V256>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else if (Lanes16) Winograd3x3<V512>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
            else Winograd3x3<V256>.GradWeight(pdw, pdy, px, s.N, s.InC, s.H, s.W, s.OutC, s.Pad, WideGemm);
        Close.Assert(fdw, expected, Atol((long)s.N * s.OutH * s.OutW), Rtol, $"winograd {variant} grad weight {s}");
    }
}
