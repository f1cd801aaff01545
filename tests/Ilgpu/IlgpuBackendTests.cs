// The CUDA backend's own behaviour on the CPU emulator: its pooling allocator, slices, size and ownership checks, and
// device selection. Every op is tested against the reference by the shared bodies in tests/Kernels ("cuda-emulated").
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class IlgpuBackendTests
{
    IlgpuBackend _cuda = null!;
    IBackend _ref = null!;

    [OneTimeSetUp]
    public void Create()
    {
        _cuda = Backends.CreateEmulated();
        _ref = Backends.Create("reference");
    }

    [OneTimeTearDown]
    public void Dispose()
    {
        _cuda.Dispose();
        _ref.Dispose();
    }

    // ---- memory ----

    [Test]
    public void FreedBlocksAreReusedZeroedAndCountedBackToZero()
    {
        using var backend = Backends.CreateEmulated();
        var first = backend.Allocate(DType.F32, 100);          // 400 bytes: a 512-byte block
        backend.Upload<float>(first, TestData.ToFloat(TestData.Uniform(1, 100)));
        first.Dispose();
        Assert.That(backend.Memory.CurrentBytes, Is.Zero);
        var second = backend.Allocate(DType.F16, 200);         // 400 bytes again: the same size class
        Assert.That(backend.PooledBlocks, Is.EqualTo(1), "the freed block is reused");
        var back = new ushort[200];
        backend.Download<ushort>(back, second);
        Assert.That(back, Is.All.Zero, "a reused block is zero-filled");
        using var other = backend.Allocate(DType.F32, 1000);   // a different size class: a new block
        Assert.That(backend.PooledBlocks, Is.EqualTo(2));
        Assert.That(backend.Memory.CurrentBytes, Is.EqualTo(400 + 4000));
        Assert.That(backend.Memory.PeakBytes, Is.EqualTo(400 + 4000));
        second.Dispose();
        other.Dispose();
        Assert.That(backend.Memory.CurrentBytes, Is.Zero);
        Assert.That(IlgpuBackend.BlockBytes(1), Is.EqualTo(256));
        Assert.That(IlgpuBackend.BlockBytes(257), Is.EqualTo(512));
    }

    [Test]
    public void SlicesShareMemoryAndOwnNothing()
    {
        var parent = _cuda.Allocate(DType.F32, 8);
        _cuda.Upload<float>(parent, [1, 2, 3, 4, 5, 6, 7, 8]);
        var slice = parent.Slice(2, 3);
        _cuda.Scale(slice, slice, 10f, 3);
        slice.Dispose();                                          // owns nothing: the parent stays usable
        var back = new float[8];
        _cuda.Download<float>(back, parent);
        Assert.That(back, Is.EqualTo(new float[] { 1, 2, 30, 40, 50, 6, 7, 8 }));
        var tail = new float[2];
        _cuda.Download<float>(tail, parent.Slice(4, 3).Slice(1, 2));
        Assert.That(tail, Is.EqualTo(new float[] { 6, 7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => parent.Slice(6, 3));
        var live = parent.Slice(0, 1);
        parent.Dispose();
        Assert.That(live.IsDisposed, Is.True, "a slice dies with its owner");
        Assert.Throws<ObjectDisposedException>(() => _cuda.Scale(live, live, 1f, 1));
    }

    [Test]
    public void UploadAndDownloadSizesMustMatch()
    {
        using var b = _cuda.Allocate(DType.F32, 4);
        Assert.Throws(Is.InstanceOf<ArgumentException>().And.Message.Contains("upload"), () => _cuda.Upload<float>(b, new float[3]));
        Assert.Throws(Is.InstanceOf<ArgumentException>().And.Message.Contains("download"), () => _cuda.Download<float>(new float[5], b));
        var bytes = new byte[16];
        _cuda.Download<byte>(bytes, b);                           // any element type with the same byte count
        Assert.That(bytes, Is.All.Zero);
    }

    [Test]
    public void GridsBeyondCudasLimitsAreClearErrorsBeforeAnyLaunch()
    {
        // 65536 batches (grid z) of 1×1 GEMMs, and 65536 (batch × heads) attention rows (grid y): CUDA caps both at 65535.
        const int Over = 65536;
        using var c = _cuda.Allocate(DType.F32, Over);
        using var a = _cuda.Allocate(DType.F32, Over);
        using var b = _cuda.Allocate(DType.F32, Over);
        var e = Assert.Throws<ArgumentException>(() => _cuda.Gemm(c, a, b, null, new GemmShape(1, 1, 1, Batch: Over)));
        Assert.That(e!.Message, Does.Contain("gemm").And.Contain("65535"));

        var s = new AttentionShape(Over, 1, 1, 1, 8);
        using var q = _cuda.Allocate(DType.F32, s.QueryLength);
        using var k = _cuda.Allocate(DType.F32, s.KeyLength);
        using var v = _cuda.Allocate(DType.F32, s.KeyLength);
        using var o = _cuda.Allocate(DType.F32, s.QueryLength);
        using var lse = _cuda.Allocate(DType.F32, s.LseLength);
        e = Assert.Throws<ArgumentException>(() => _cuda.Attention(o, lse, q, k, v, s));
        Assert.That(e!.Message, Does.Contain("attention").And.Contain("65535"));
        e = Assert.Throws<ArgumentException>(() => _cuda.AttentionBackward(q, k, v, o, q, k, v, o, lse, s));
        Assert.That(e!.Message, Does.Contain("attention backward").And.Contain("65535"));
    }

    [Test]
    public void RejectsAnotherBackendsBuffer()
    {
        using var mine = _cuda.Allocate(DType.F32, 4);
        using var theirs = _ref.Allocate(DType.F32, 4);
        var e = Assert.Throws<ArgumentException>(() => _cuda.Scale(mine, theirs, 2f, 4));
        Assert.That(e!.Message, Does.Contain("scale").And.Contain("reference"));
    }

    [Test]
    public void CreateNamesTheMissingDeviceAndAutoFallsBack()
    {
        Assert.That(_cuda.Name, Is.EqualTo("cuda"));
        if (IlgpuDevice.CudaPresent()) Assert.Ignore("a CUDA GPU is present");
        var e = Assert.Throws<ArgumentException>(() => Backends.Create("cuda"));
        Assert.That(e!.Message, Does.Contain("no CUDA device found; use --device cpu"));
        using var auto = Backends.Auto();
        Assert.That(auto.Name, Is.EqualTo("cpu"));
    }

    // ---- GPUs without tensor cores ----

    [Test]
    public void HalfInputGemmsWithoutTensorCoresMatchTheReference([Values(DType.F16, DType.BF16)] DType inputs)
    {
        // The _model kernels, which a GPU below compute capability 8.0 runs (it has no mma.sync m16n8k16): the same tiles,
        // with the model of the instruction on the FP32 lanes. Tile-crossing sizes, both transposes, alpha/beta/bias and
        // a batch with a shared B; the tolerance is GemmTests' (only the f32 accumulation rounds).
        using var lanes = new IlgpuBackend(IlgpuDevice.Create(emulate: true), tensorCores: false);
        GemmShape[] shapes = [new(65, 66, 33), new(7, 65, 57, TransA: true), new(17, 100, 40, TransB: true, Alpha: 0.5f, Beta: -1.5f),
            new(5, 7, 9, Batch: 3, StrideB: 0)];
        foreach (var s in shapes)
        {
            long aLen = (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K, bLen = (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N;
            double[] a = GemmTests.Rounded(TestData.Uniform(1, aLen), inputs);
            double[] b = GemmTests.Rounded(TestData.Uniform(2, bLen), inputs);
            double[] c = TestData.Uniform(3, s.Batch * (long)s.M * s.N), bias = TestData.Uniform(4, s.N);
            var expected = (double[])c.Clone();
            GemmReference.Gemm(expected, a, b, bias, s);
            using var aBuf = Half(lanes, a, inputs);
            using var bBuf = Half(lanes, b, inputs);
            using var cBuf = lanes.Allocate(DType.F32, c.Length);
            using var biasBuf = lanes.Allocate(DType.F32, s.N);
            lanes.Upload<float>(cBuf, TestData.ToFloat(c));
            lanes.Upload<float>(biasBuf, TestData.ToFloat(bias));
            lanes.Gemm(cBuf, aBuf, bBuf, biasBuf, s);
            var actual = new float[c.Length];
            lanes.Download<float>(actual, cBuf);
            Close.Assert(actual, expected, GemmTests.Atol(s), GemmTests.Rtol, $"{s} {inputs.Name()}");
        }
    }

    static DeviceBuffer Half(IBackend backend, double[] values, DType dtype)
    {
        var buffer = backend.Allocate(dtype, values.Length);
        backend.Upload<ushort>(buffer, GemmTests.HalfBits(values, dtype));
        return buffer;
    }

    // ---- TF32 ----

    [Test]
    public void F32GemmsOnTf32TensorCoresRoundTheirInputsToNearestTiesAway()
    {
        // With AllowTf32 the f32 GEMM runs gemm_tf32_mma: its result must be the reference's on inputs rounded to TF32
        // (10-bit significands, to nearest with ties away from zero, as cvt.rna.tf32.f32), within GemmTests' f32
        // accumulation bound, and measurably not the f32 result (so the TF32 kernel ran).
        using var tf32 = Backends.CreateEmulated();
        tf32.AllowTf32 = true;
        GemmShape[] shapes = [new(65, 66, 33), new(7, 65, 301, TransA: true), new(17, 100, 40, TransB: true, Alpha: 0.5f, Beta: -1.5f),
            new(5, 7, 9, Batch: 3, StrideB: 0)];
        foreach (var s in shapes)
        {
            long aLen = (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K, bLen = (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N;
            double[] a = TestData.Uniform(1, aLen), b = TestData.Uniform(2, bLen);
            double[] c = TestData.Uniform(3, s.Batch * (long)s.M * s.N), bias = TestData.Uniform(4, s.N);
            var expected = (double[])c.Clone();
            GemmReference.Gemm(expected, a.Select(Tf32).ToArray(), b.Select(Tf32).ToArray(), bias, s);
            var unrounded = (double[])c.Clone();
            GemmReference.Gemm(unrounded, a, b, bias, s);
            var actual = Gemm(tf32, a, b, c, bias, s);
            Close.Assert(actual, expected, GemmTests.Atol(s), GemmTests.Rtol, $"{s} tf32");
            if (s.K >= 33)
                Assert.That(actual.Select((v, i) => Math.Abs(v - unrounded[i])).Max(), Is.GreaterThan(GemmTests.Atol(s)), $"{s}: the f32 result");
        }
    }

    /// <summary>v as f32, rounded to TF32 (an independent form of GemmMmaKernels.RoundToTf32): 11 significant bits, ties
    /// away from zero, with subnormals rounded at the normals' smallest step (2^-136).</summary>
    static double Tf32(double v)
    {
        float f = (float)v;
        if (!float.IsFinite(f) || f == 0) return f;
        double step = Math.ScaleB(1, Math.Max(Math.ILogB(f), -126) - 10);
        return (float)(Math.Round(f / step, MidpointRounding.AwayFromZero) * step);
    }

    [Test]
    public void RoundToTf32TiesAwayAndKeepsInfAndNaN()
    {
        (uint Bits, uint Tf32)[] cases =
        [
            (0x3F801000, 0x3F802000),   // 1 + 2^-11, a tie: away from zero
            (0xBF801000, 0xBF802000),   // and its negative
            (0x3F800FFF, 0x3F800000),   // just under the tie
            (0x3F803000, 0x3F804000),   // a tie above an odd significand: away, not to even
            (0x7F7FFFFF, 0x7F800000),   // the largest f32 rounds up past TF32's largest: Inf
            (0x7F800000, 0x7F800000),   // Inf
            (0x7F800001, 0x7F800001),   // a NaN whose payload is all below the kept bits stays NaN
            (0x00001000, 0x00002000),   // a subnormal tie
        ];
        foreach (var (bits, tf32) in cases)
        {
            Assert.That(GemmMmaKernels.RoundToTf32(bits), Is.EqualTo(tf32), $"0x{bits:X8}");
            if (float.IsFinite(BitConverter.UInt32BitsToSingle(tf32)))
                Assert.That(BitConverter.SingleToUInt32Bits((float)Tf32(BitConverter.UInt32BitsToSingle(bits))), Is.EqualTo(tf32), $"0x{bits:X8} (test's form)");
        }
    }

    static float[] Gemm(IBackend backend, double[] a, double[] b, double[] c, double[] bias, in GemmShape s)
    {
        using var aBuf = backend.Allocate(DType.F32, a.Length);
        using var bBuf = backend.Allocate(DType.F32, b.Length);
        using var cBuf = backend.Allocate(DType.F32, c.Length);
        using var biasBuf = backend.Allocate(DType.F32, bias.Length);
        backend.Upload<float>(aBuf, TestData.ToFloat(a));
        backend.Upload<float>(bBuf, TestData.ToFloat(b));
        backend.Upload<float>(cBuf, TestData.ToFloat(c));
        backend.Upload<float>(biasBuf, TestData.ToFloat(bias));
        backend.Gemm(cBuf, aBuf, bBuf, biasBuf, s);
        var result = new float[c.Length];
        backend.Download<float>(result, cBuf);
        return result;
    }
}
