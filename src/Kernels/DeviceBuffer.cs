// A typed, flat block of backend memory; owned buffers free on Dispose, slices borrow their parent's memory.
namespace DreamBooth.Kernels;

public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(IBackend backend, DType dtype, long length)
    {
        Backend = backend;
        DType = dtype;
        Length = length;
    }

    public IBackend Backend { get; }
    public DType DType { get; }
    /// <summary>Number of elements (not bytes).</summary>
    public long Length { get; }
    public long Bytes => Length * DType.Size();
    public abstract bool IsDisposed { get; }

    /// <summary>A view of elements [offset, offset + length) that shares this buffer's memory and owns nothing.</summary>
    public abstract DeviceBuffer Slice(long offset, long length);

    public abstract void Dispose();

    public override string ToString() => $"{DType.Name()}[{Length}]";
}
