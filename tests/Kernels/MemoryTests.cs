// Buffers: allocation is zeroed (or, uninitialized, poisoned in tests) and counted, slices share memory, disposal frees, foreign buffers are rejected.
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class MemoryTests(string backend) : BackendTest(backend)
{
    [Test]
    public void AllocationIsZeroedAndCounted()
    {
        long before = Backend.Memory.CurrentBytes;
        using (var b = Backend.Allocate(DType.F32, 1000))
        {
            Assert.That(Backend.Memory.CurrentBytes - before, Is.EqualTo(4000));
            Assert.That(Read(b), Is.All.EqualTo(0f));
        }
        Assert.That(Backend.Memory.CurrentBytes, Is.EqualTo(before));
        Assert.That(Backend.Memory.PeakBytes, Is.GreaterThanOrEqualTo(before + 4000));
    }

    [Test]
    public void UninitializedAllocationIsCountedAndPoisonedOnTheHostTiers()
    {
        long before = Backend.Memory.CurrentBytes;
        using (var b = Backend.AllocateUninitialized(DType.F32, 1000))
        {
            Assert.That(Backend.Memory.CurrentBytes - before, Is.EqualTo(4000));
            if (Backend is HostBackend) Assert.That(Read(b), Is.All.NaN, "the tests' PoisonSetup fills it with NaN");
            Backend.Upload<float>(b, Enumerable.Repeat(2f, 1000).ToArray());
            Assert.That(Read(b), Is.All.EqualTo(2f));
        }
        Assert.That(Backend.Memory.CurrentBytes, Is.EqualTo(before));
    }

    [Test]
    public void SliceSharesMemoryAndOwnsNothing()
    {
        var b = Buf([1f, 2f, 3f, 4f, 5f]);
        var s = b.Slice(1, 3);
        Assert.That(Read(s), Is.EqualTo(new[] { 2f, 3f, 4f }));
        Backend.Upload<float>(s, [7f, 8f, 9f]);
        Assert.That(Read(b), Is.EqualTo(new[] { 1f, 7f, 8f, 9f, 5f }));
        s.Dispose();
        Assert.That(Read(b)[1], Is.EqualTo(7f));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Slice(3, 3));
    }

    [Test]
    public void DisposedBufferIsRejected()
    {
        var b = Backend.Allocate(DType.F32, 4);
        var s = b.Slice(0, 2);
        b.Dispose();
        Assert.That(b.IsDisposed && s.IsDisposed, Is.True);
        Assert.Throws<ObjectDisposedException>(() => Read(s));
    }

    [Test]
    public void UploadSizeMismatchNamesBothSizes()
    {
        var b = Zeros(4);
        var e = Assert.Throws<ArgumentException>(() => Backend.Upload<float>(b, [1f, 2f]));
        Assert.That(e!.Message, Does.Contain("upload").And.Contain("16 bytes"));
    }

    [Test]
    public void ForeignBufferIsRejected()
    {
        using var other = NewBackend(BackendName);
        using var foreign = other.Allocate(DType.F32, 4);
        Assert.Throws<ArgumentException>(() => Read(foreign));
    }

    [Test]
    public void UnknownBackendNameIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => Backends.Create("tpu"));
        Assert.That(e!.Message, Does.Contain("tpu").And.Contain("cpu"));
    }
}
