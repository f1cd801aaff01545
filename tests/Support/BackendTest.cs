// Base of every kernel test fixture: runs the same test bodies once per backend (reference, cpu, later ilgpu).
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

[TestFixtureSource(typeof(BackendTest), nameof(BackendNames))]
public abstract class BackendTest(string backendName)
{
    public static IEnumerable<string> BackendNames => Backends.Names;

    protected string BackendName { get; } = backendName;
    protected IBackend Backend { get; private set; } = null!;
    readonly List<DeviceBuffer> _buffers = [];

    [SetUp]
    public void CreateBackend() => Backend = Backends.Create(BackendName);

    [TearDown]
    public void DisposeBackend()
    {
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
        Backend.Dispose();
    }

    /// <summary>A device buffer holding these values (disposed after the test).</summary>
    protected DeviceBuffer Buf(float[] values)
    {
        var b = Backend.Allocate(DType.F32, values.Length);
        Backend.Upload<float>(b, values);
        _buffers.Add(b);
        return b;
    }

    protected DeviceBuffer Buf(double[] values) => Buf(Array.ConvertAll(values, v => (float)v));

    protected DeviceBuffer Ints(int[] values)
    {
        var b = Backend.Allocate(DType.I32, values.Length);
        Backend.Upload<int>(b, values);
        _buffers.Add(b);
        return b;
    }

    /// <summary>A zero-filled buffer (disposed after the test).</summary>
    protected DeviceBuffer Zeros(long length, DType dtype = DType.F32)
    {
        var b = Backend.Allocate(dtype, length);
        _buffers.Add(b);
        return b;
    }

    protected float[] Read(DeviceBuffer buffer)
    {
        var result = new float[buffer.Length];
        Backend.Download<float>(result, buffer);
        return result;
    }
}
