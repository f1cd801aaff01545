// Conv2d forward, grad-input and grad-weight on every backend against the double reference; finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures]
public class Conv2dTests(string backend) : BackendTest(backend)
{
    // f32 accumulation of products of inputs in [-1, 1): forward sums InC·KH·KW terms, grad-input at most OutC·KH·KW,
    // grad-weight N·OH·OW; the error grows about like sqrt(terms)·eps·|partial sums|, and 1e-5·sqrt(terms) leaves 10×.
    const double AtolPerSqrtTerm = 1e-5;
    internal const double Rtol = 1e-4;   // rounding the result to f32, and adding it onto the accumulated dw / dbias

    internal static double Atol(long terms) => 1e-6 + AtolPerSqrtTerm * Math.Sqrt(terms);

    // Batch 1, odd and non-square sizes, stride 2, pad 0 and 1, 1×1 and 3×3 (and other) kernels, and SD's shapes scaled
    // down: 3×3 with depth above the GEMM's 256 slab, a stride-2 downsample, a 1×1 projection, many pixel blocks, rows
    // of more than 16 output pixels with padding 1 and 2. On the cpu tier all of these are too small for Winograd
    // (CpuBackend.Winograd and SmallWinograd; Conv2dWinogradTests calls both forms directly at these sizes, and
    // WinogradSizedConvolution and SmallWinogradSizedConvolution below reach them through the backend). The last has 65 input and 66 output channels: rows past one 64-row tile in all
    // three CUDA kernels (the others cross its 64-column tiles and 16-deep slabs).
    internal static readonly ConvShape[] Shapes =
    [
        new(1, 3, 5, 7, 4, 3, 3, 1, 1), new(2, 5, 9, 8, 6, 3, 3, 2, 1), new(2, 3, 8, 8, 5, 3, 3, 1, 0),
        new(2, 4, 6, 6, 3, 1, 1, 1, 0), new(1, 4, 7, 5, 3, 1, 1, 2, 0), new(1, 3, 5, 5, 2, 1, 1, 1, 1),
        new(1, 2, 6, 5, 3, 2, 3, 1, 1), new(3, 2, 4, 4, 2, 5, 5, 1, 2), new(1, 1, 1, 1, 1, 1, 1, 1, 0),
        new(2, 32, 12, 12, 32, 3, 3, 1, 1), new(1, 24, 11, 13, 40, 3, 3, 2, 1), new(2, 40, 9, 9, 24, 1, 1, 1, 0),
        new(1, 8, 40, 40, 8, 3, 3, 1, 1), new(1, 2, 9, 70, 3, 3, 3, 1, 1), new(2, 3, 7, 66, 4, 3, 3, 1, 2),
        new(1, 65, 3, 3, 66, 1, 1, 1, 0),
    ];

    [Test]
    public void Forward([ValueSource(nameof(Shapes))] ConvShape s, [Values] bool bias)
    {
        double[] x = TestData.Uniform(1, s.InputLength), w = TestData.Uniform(2, s.WeightLength);
        double[] b = bias ? TestData.Uniform(3, s.OutC) : [];
        var expected = new double[s.OutputLength];
        Conv2dReference.Forward(expected, x, w, b, s);
        var y = Buf(TestData.Uniform(4, s.OutputLength));   // overwritten
        Backend.Conv2d(y, Buf(x), Buf(w), bias ? Buf(b) : null, s);
        Close.Assert(Read(y), expected, Atol((long)s.InC * s.KH * s.KW), Rtol, $"conv2d {s}");
    }

    [Test]
    public void GradInput([ValueSource(nameof(Shapes))] ConvShape s)
    {
        double[] dy = TestData.Uniform(5, s.OutputLength), w = TestData.Uniform(2, s.WeightLength);
        var expected = new double[s.InputLength];
        Conv2dReference.GradInput(expected, dy, w, s);
        var dx = Buf(TestData.Uniform(6, s.InputLength));   // overwritten
        Backend.Conv2dGradInput(dx, Buf(dy), Buf(w), s);
        Close.Assert(Read(dx), expected, Atol((long)s.OutC * s.KH * s.KW), Rtol, $"conv2d grad input {s}");
    }

    [Test]
    public void GradWeightAccumulates([ValueSource(nameof(Shapes))] ConvShape s, [Values] bool bias)
    {
        double[] dy = TestData.Uniform(5, s.OutputLength), x = TestData.Uniform(1, s.InputLength);
        double[] dw = TestData.Uniform(7, s.WeightLength), db = bias ? TestData.Uniform(8, s.OutC) : [];
        double[] expectedW = (double[])dw.Clone(), expectedB = (double[])db.Clone();
        Conv2dReference.GradWeight(expectedW, expectedB, dy, x, s);
        DeviceBuffer dwBuf = Buf(dw), dyBuf = Buf(dy), xBuf = Buf(x);
        DeviceBuffer? dbBuf = bias ? Buf(db) : null;
        Backend.Conv2dGradWeight(dwBuf, dbBuf, dyBuf, xBuf, s);
        long terms = (long)s.N * s.OutH * s.OutW;
        Close.Assert(Read(dwBuf), expectedW, Atol(terms), Rtol, $"conv2d grad weight {s}");
        if (dbBuf != null) Close.Assert(Read(dbBuf), expectedB, Atol(terms), Rtol, $"conv2d grad bias {s}");
    }

    /// <summary>A convolution the cpu tier runs by Winograd (64 channels, 256 tiles of 4×4 pixels; 16-lane transforms on
    /// AVX-512), forward and both gradients.</summary>
    [Test, Category(HostScale)]
    public void WinogradSizedConvolution()
    {
        var s = new ConvShape(1, 64, 64, 64, 64, 3, 3, 1, 1);
        Forward(s, bias: true);
        GradInput(s);
        GradWeightAccumulates(s, bias: true);
    }

    /// <summary>A convolution the cpu tier runs by Winograd F(2×2) (8×8 images, 64 channels: CpuBackend.SmallWinograd),
    /// forward and both gradients.</summary>
    [Test, Category(HostScale)]
    public void SmallWinogradSizedConvolution()
    {
        var s = new ConvShape(2, 64, 8, 8, 64, 3, 3, 1, 1);
        Forward(s, bias: true);
        GradInput(s);
        GradWeightAccumulates(s, bias: true);
    }

    /// <summary>Batches the cpu tier runs as one GEMM over all images' columns, made from x as they are packed
    /// (Im2Col.Folds, Im2Col.Source), large enough that the GEMM splits over the cores (and, for dw, its depth): a
    /// 3×3 "same" convolution (whole planes as shifted copies) and a stride-2 one (row by row, runs across images).</summary>
    [Test, Category(HostScale)]
    public void FoldedBatchConvolutions([Values(0, 1)] int which)
    {
        var s = which == 0 ? new ConvShape(4, 32, 32, 32, 128, 3, 3, 1, 1) : new ConvShape(4, 48, 33, 31, 40, 3, 3, 2, 1);
        Forward(s, bias: true);
        GradInput(s);
        GradWeightAccumulates(s, bias: true);
    }

    /// <summary>3×3 convolutions with few output channels, which the cpu tier reads from shifted rows of a padded input
    /// (CpuBackend.ByShifts), large enough to split over the cores: a batch of 32×32 images, and odd sizes whose
    /// 9·96-deep GEMM crosses its 256 slabs.</summary>
    [Test, Category(HostScale)]
    public void ShiftedRowConvolutions([Values(0, 1)] int which)
    {
        var s = which == 0 ? new ConvShape(4, 32, 32, 32, 32, 3, 3, 1, 1) : new ConvShape(2, 96, 17, 19, 64, 3, 3, 1, 1);
        Forward(s, bias: true);
        GradInput(s);
        GradWeightAccumulates(s, bias: true);
    }

    [Test]
    public void BadArguments()
    {
        var s = new ConvShape(1, 2, 5, 5, 3, 3, 3, 1, 1);
        DeviceBuffer x = Zeros(s.InputLength), w = Zeros(s.WeightLength), y = Zeros(s.OutputLength);
        Assert.That(() => Backend.Conv2d(y, Zeros(s.InputLength - 1), w, null, s), Throws.ArgumentException.With.Message.Contains("conv2d: x"));
        Assert.That(() => Backend.Conv2d(y, x, w, Zeros(2), s), Throws.ArgumentException.With.Message.Contains("conv2d: bias"));
        Assert.That(() => Backend.Conv2d(y, x, Zeros(s.WeightLength, DType.I32), null, s), Throws.ArgumentException.With.Message.Contains("conv2d: w"));
        Assert.That(() => Backend.Conv2d(y, x, w, null, s with { Stride = 0 }), Throws.ArgumentException.With.Message.Contains("conv2d: stride"));
        Assert.That(() => Backend.Conv2d(y, x, w, null, s with { Pad = -1 }), Throws.ArgumentException.With.Message.Contains("conv2d: padding"));
        Assert.That(() => Backend.Conv2d(y, x, w, null, s with { KH = 9, Pad = 0 }), Throws.ArgumentException.With.Message.Contains("conv2d: kernel larger"));
        Assert.That(() => Backend.Conv2dGradInput(Zeros(3), y, w, s), Throws.ArgumentException.With.Message.Contains("conv2d grad input: dx"));
        Assert.That(() => Backend.Conv2dGradWeight(w, Zeros(4), y, x, s), Throws.ArgumentException.With.Message.Contains("conv2d grad weight: dbias"));
        Assert.That(() => Backend.Conv2dGradWeight(w, null, Zeros(1), x, s), Throws.ArgumentException.With.Message.Contains("conv2d grad weight: dy"));
    }
}

[TestFixture]
public class Conv2dGradChecks
{
    [TestCase(1, 2, 5, 4, 3, 3, 3, 2, 1)]
    [TestCase(2, 2, 4, 5, 2, 3, 3, 1, 1)]
    [TestCase(1, 3, 4, 4, 2, 1, 1, 1, 0)]
    [TestCase(1, 2, 5, 5, 2, 2, 3, 2, 0)]
    public void GradientsOfInputWeightAndBias(int n, int inC, int h, int w, int outC, int kh, int kw, int stride, int pad)
    {
        var s = new ConvShape(n, inC, h, w, outC, kh, kw, stride, pad);
        double[][] inputs = [TestData.Uniform(1, s.InputLength), TestData.Uniform(2, s.WeightLength), TestData.Uniform(3, outC)];
        GradCheck.Check(inputs,
            v =>
            {
                var y = new double[s.OutputLength];
                Conv2dReference.Forward(y, v[0], v[1], v[2], s);
                return y;
            },
            (v, dy) =>
            {
                double[] dx = new double[s.InputLength], dw = new double[s.WeightLength], db = new double[outC];
                Conv2dReference.GradInput(dx, dy, v[1], s);
                Conv2dReference.GradWeight(dw, db, dy, v[0], s);
                return [dx, dw, db];
            },
            $"conv2d {s}");
    }
}
