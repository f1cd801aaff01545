// The CUDA backend's own behaviour on the CPU emulator: its pooling allocator, slices, size and ownership checks, and
// device selection. Every op is tested against the reference by the shared bodies in tests/Kernels ("cuda-emulated").
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
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

    // ---- tensor cores and TF32 (the kernels themselves: tests/Kernels/TensorCoreTests.cs) ----

    [Test]
    public void TensorCoreLaunchesAskForDynamicSharedMemoryOnlyWhenTheModelRuns()
    {
        // The model of mma.sync exchanges fragment registers through dynamic shared memory; on tensor cores one unused
        // element is asked for, because ILGPU refuses a request of none (a launch on a GPU would throw).
        var s = new GemmShape(100, 70, 30, Batch: 2);
        Assert.That(GemmMmaKernels.Config(s, modelled: true).SharedMemoryConfig.ArraySize, Is.EqualTo(128 * 16 * sizeof(uint)));
        Assert.That(GemmMmaKernels.Config(s, modelled: false).SharedMemoryConfig.ArraySize, Is.EqualTo(sizeof(uint)));
        Assert.That(GemmMmaKernels.Config(s, modelled: false).GridDim, Is.EqualTo(new ILGPU.Index3D(2, 2, 2)));
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
            (0xFF7FFFFF, 0xFF800000),   // and the most negative: -Inf
            (0x7F800001, 0x7FC00001),   // a NaN whose payload is all below the kept bits gets the quiet bit: still a NaN
            (0xFFC00000, 0xFFC00000),   // a quiet NaN as it is
            (0x00001000, 0x00002000),   // a subnormal tie
        ];
        foreach (var (bits, tf32) in cases)
        {
            Assert.That(GemmMmaKernels.RoundToTf32(bits), Is.EqualTo(tf32), $"0x{bits:X8}");
            if (float.IsFinite(BitConverter.UInt32BitsToSingle(tf32)))
                Assert.That(BitConverter.SingleToUInt32Bits((float)Tf32(BitConverter.UInt32BitsToSingle(bits))), Is.EqualTo(tf32), $"0x{bits:X8} (test's form)");
        }
    }

    /// <summary>v as f32, rounded to TF32 (an independent form of GemmMmaKernels.RoundToTf32): 11 significant bits,
    /// ties away from zero, with subnormals rounded at the normals' smallest step (2^-136).</summary>
    internal static double Tf32(double v)
    {
        float f = (float)v;
        if (!float.IsFinite(f) || f == 0) return f;
        double step = Math.ScaleB(1, Math.Max(Math.ILogB(f), -126) - 10);
        return (float)(Math.Round(f / step, MidpointRounding.AwayFromZero) * step);
    }

}
