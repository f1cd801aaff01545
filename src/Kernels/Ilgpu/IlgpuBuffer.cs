// Device memory of the CUDA tier: a pooled byte block (or a sub-view of one), typed views for the kernels.
using ILGPU;
using ILGPU.Runtime;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// An owning buffer holds one block of its backend's pool (Block, at least Bytes long, a power of two ≥ 256 bytes) and
/// gives it back on Dispose; a slice addresses elements of its owner's block and owns nothing (it is disposed with its
/// owner). Bytes is the view the kernels see: exactly Length elements from the buffer's first element.
/// </summary>
public sealed class IlgpuBuffer : DeviceBuffer
{
    readonly IlgpuBuffer? _owner;   // null for an owning buffer
    readonly IlgpuBackend _backend;
    readonly long _byteOffset;      // from the start of the owner's block
    MemoryBuffer1D<byte, Stride1D.Dense>? _block;

    internal IlgpuBuffer(IlgpuBackend backend, DType dtype, long length, MemoryBuffer1D<byte, Stride1D.Dense> block)
        : base(backend, dtype, length)
    {
        _backend = backend;
        _block = block;
    }

    IlgpuBuffer(IlgpuBuffer owner, long byteOffset, long length) : base(owner.Backend, owner.DType, length)
    {
        _owner = owner;
        _backend = owner._backend;
        _byteOffset = byteOffset;
    }

    public override bool IsDisposed => _owner?.IsDisposed ?? _block == null;

    /// <summary>The buffer's bytes on the device; valid until the owning buffer is disposed.</summary>
    public ArrayView<byte> View
    {
        get
        {
            var block = (_owner ?? this)._block ?? throw new ObjectDisposedException(nameof(IlgpuBuffer), "the device buffer was disposed");
            return block.View.AsContiguous().SubView(_byteOffset, Bytes);
        }
    }

    public ArrayView<float> F32 => View.Cast<float>();
    public ArrayView<int> I32 => View.Cast<int>();
    public ArrayView<ushort> U16 => View.Cast<ushort>();

    public override DeviceBuffer Slice(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) is outside {this}");
        return new IlgpuBuffer(_owner ?? this, _byteOffset + offset * DType.Size(), length);
    }

    public override void Dispose()
    {
        if (_owner != null || _block == null) return;
        _backend.Release(_block, Bytes);
        _block = null;
    }
}
