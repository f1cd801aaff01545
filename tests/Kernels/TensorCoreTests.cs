// What only the CUDA tier has: the _model GEMMs, and f32 GEMMs and convolutions on TF32 tensor cores (--allow_tf32).
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Ilgpu;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

[TierFixtures(nameof(CudaTierNames))]
public class TensorCoreTests(string backend) : BackendTest(backend)
{
    // Tile-crossing sizes, both transposes, alpha/beta/bias, and a batch with a shared B.
    static readonly GemmShape[] Shapes = [new(65, 66, 33), new(7, 65, 301, TransA: true),
        new(17, 100, 40, TransB: true, Alpha: 0.5f, Beta: -1.5f), new(5, 7, 9, Batch: 3, StrideB: 0)];

    [Test]
    public void HalfInputGemmsWithoutTensorCoresMatchTheReference([Values(DType.F16, DType.BF16)] DType inputs)
    {
        // The _model kernels, which a GPU below compute capability 8.0 runs (it has no mma.sync m16n8k16): the same tiles,
        // with the model of the instruction on the FP32 lanes. The tolerance is GemmTests' (only the f32 sums round).
        using var lanes = new IlgpuBackend(IlgpuDevice.Create(emulate: BackendName == Emulated), tensorCores: false);
        Assert.That(lanes.TensorCores, Is.False);
        foreach (var s in Shapes)
        {
            var (a, b, c, bias) = Operands(s, inputs);
            var expected = (double[])c.Clone();
            GemmReference.Gemm(expected, a, b, bias, s);
            Close.Assert(Run(lanes, a, b, c, bias, s, inputs), expected, GemmTests.Atol(s), GemmTests.Rtol, $"{s} {inputs.Name()}");
        }
    }

    [Test]
    public void F32GemmsOnTf32TensorCoresRoundTheirInputsToNearestTiesAway()
    {
        // With AllowTf32 the f32 GEMM runs gemm_tf32_mma: its result must be the reference's on inputs rounded to TF32
        // (10-bit significands, to nearest with ties away from zero, as cvt.rna.tf32.f32), within GemmTests' f32
        // accumulation bound, and measurably not the f32 result (so the TF32 kernel ran).
        var cuda = (IlgpuBackend)Backend;
        Assert.That(cuda.TensorCores, "the CUDA tier's tests run on the emulator or a GPU of compute capability 8.0+");
        cuda.AllowTf32 = true;
        try
        {
            foreach (var s in Shapes)
            {
                var (a, b, c, bias) = Operands(s, DType.F32);
                var expected = (double[])c.Clone();
                GemmReference.Gemm(expected, a.Select(IlgpuBackendTests.Tf32).ToArray(), b.Select(IlgpuBackendTests.Tf32).ToArray(), bias, s);
                var unrounded = (double[])c.Clone();
                GemmReference.Gemm(unrounded, a, b, bias, s);
                var actual = Run(cuda, a, b, c, bias, s, DType.F32);
                Close.Assert(actual, expected, GemmTests.Atol(s), GemmTests.Rtol, $"{s} tf32");
                if (s.K >= 33)
                    Assert.That(actual.Select((v, i) => Math.Abs(v - unrounded[i])).Max(), Is.GreaterThan(GemmTests.Atol(s)), $"{s}: the f32 result");
            }
        }
        finally
        {
            cuda.AllowTf32 = false;
        }
    }

    [Test]
    public void ConvolutionsOnTf32TensorCoresRoundTheirInputs([ValueSource(typeof(Conv2dTests), nameof(Conv2dTests.Shapes))] ConvShape s,
        [Values] bool bias)
    {
        // Forward, grad input and grad weight (accumulated) with AllowTf32: the reference's results on operands rounded
        // to TF32, within Conv2dTests' f32 accumulation bounds; the bias and its gradient stay f32 sums. Conv2dTests'
        // shapes cross the tiles' 64 rows and columns and 16-deep slabs, with strides, padding and 1×1 to 5×5 kernels.
        var cuda = (IlgpuBackend)Backend;
        Assert.That(cuda.TensorCores, "the CUDA tier's tests run on the emulator or a GPU of compute capability 8.0+");
        cuda.AllowTf32 = true;
        try
        {
            double[] x = TestData.Uniform(1, s.InputLength), w = TestData.Uniform(2, s.WeightLength);
            double[] b = bias ? TestData.Uniform(3, s.OutC) : [];
            double[] dy = TestData.Uniform(5, s.OutputLength), dw = TestData.Uniform(7, s.WeightLength), db = TestData.Uniform(8, s.OutC);
            double[] xt = x.Select(IlgpuBackendTests.Tf32).ToArray(), wt = w.Select(IlgpuBackendTests.Tf32).ToArray();
            double[] dyt = dy.Select(IlgpuBackendTests.Tf32).ToArray();

            var y = new double[s.OutputLength];
            Conv2dReference.Forward(y, xt, wt, b, s);
            var yBuf = Buf(TestData.Uniform(4, s.OutputLength));
            Backend.Conv2d(yBuf, Buf(x), Buf(w), bias ? Buf(b) : null, s);
            var actual = Read(yBuf);
            long terms = (long)s.InC * s.KH * s.KW;
            Close.Assert(actual, y, Conv2dTests.Atol(terms), Conv2dTests.Rtol, $"conv2d tf32 {s}");
            if (terms >= 200)
            {
                var f32 = new double[s.OutputLength];
                Conv2dReference.Forward(f32, x, w, b, s);
                Assert.That(actual.Select((v, i) => Math.Abs(v - f32[i])).Max(), Is.GreaterThan(Conv2dTests.Atol(terms)), $"{s}: the f32 result");
            }

            var dx = new double[s.InputLength];
            Conv2dReference.GradInput(dx, dyt, wt, s);
            var dxBuf = Buf(TestData.Uniform(6, s.InputLength));
            Backend.Conv2dGradInput(dxBuf, Buf(dy), Buf(w), s);
            Close.Assert(Read(dxBuf), dx, Conv2dTests.Atol((long)s.OutC * s.KH * s.KW), Conv2dTests.Rtol, $"conv2d grad input tf32 {s}");

            double[] expectedW = (double[])dw.Clone(), expectedB = (double[])db.Clone();
            Conv2dReference.GradWeight(expectedW, [], dyt, xt, s);
            Conv2dReference.GradWeight(new double[s.WeightLength], expectedB, dy, x, s);
            DeviceBuffer dwBuf = Buf(dw), dbBuf = Buf(db);
            Backend.Conv2dGradWeight(dwBuf, bias ? dbBuf : null, Buf(dy), Buf(x), s);
            long pixels = (long)s.N * s.OutH * s.OutW;
            Close.Assert(Read(dwBuf), expectedW, Conv2dTests.Atol(pixels), Conv2dTests.Rtol, $"conv2d grad weight tf32 {s}");
            Close.Assert(Read(dbBuf), bias ? expectedB : db, Conv2dTests.Atol(pixels), Conv2dTests.Rtol, $"conv2d grad bias {s}");
        }
        finally
        {
            cuda.AllowTf32 = false;
        }
    }

    /// <summary>Random A, B (exact in the inputs' dtype), C and bias for s.</summary>
    static (double[] A, double[] B, double[] C, double[] Bias) Operands(in GemmShape s, DType inputs)
    {
        long aLen = (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K, bLen = (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N;
        return (GemmTests.Rounded(TestData.Uniform(1, aLen), inputs), GemmTests.Rounded(TestData.Uniform(2, bLen), inputs),
            TestData.Uniform(3, s.Batch * (long)s.M * s.N), TestData.Uniform(4, s.N));
    }

    /// <summary>C after backend.Gemm(C, A, B, bias, s) with A and B of the inputs' dtype.</summary>
    static float[] Run(IBackend backend, double[] a, double[] b, double[] c, double[] bias, in GemmShape s, DType inputs)
    {
        using var aBuf = Input(backend, a, inputs);
        using var bBuf = Input(backend, b, inputs);
        using var cBuf = backend.Allocate(DType.F32, c.Length);
        using var biasBuf = backend.Allocate(DType.F32, bias.Length);
        backend.Upload<float>(cBuf, TestData.ToFloat(c));
        backend.Upload<float>(biasBuf, TestData.ToFloat(bias));
        backend.Gemm(cBuf, aBuf, bBuf, biasBuf, s);
        var result = new float[c.Length];
        backend.Download<float>(result, cBuf);
        return result;
    }

    static DeviceBuffer Input(IBackend backend, double[] values, DType dtype)
    {
        var buffer = backend.Allocate(dtype, values.Length);
        if (dtype == DType.F32) backend.Upload<float>(buffer, TestData.ToFloat(values));
        else backend.Upload<ushort>(buffer, GemmTests.HalfBits(values, dtype));
        return buffer;
    }
}
