// Host memory shared by the scalar Reference tier and the SIMD Cpu tier: 64-byte aligned native buffers.
using System.Runtime.InteropServices;

namespace DreamBooth.Kernels;

public sealed unsafe class HostBuffer : DeviceBuffer
{
    readonly HostBuffer? _owner;   // null for an owning buffer
    readonly MemoryStats _stats;
    byte* _pointer;

    internal HostBuffer(IBackend backend, DType dtype, long length, bool zeroed) : base(backend, dtype, length)
    {
        nuint bytes = (nuint)Math.Max(Bytes, 1);
        _pointer = (byte*)NativeMemory.AlignedAlloc(bytes, 64);
        if (zeroed) NativeMemory.Clear(_pointer, bytes);
        else if (HostBackend.PoisonUninitialized) NativeMemory.Fill(_pointer, bytes, 0xFF);   // NaN in every float type
        _stats = backend.Memory;
        _stats.Allocated(Bytes);
    }

    HostBuffer(HostBuffer owner, long offset, long length) : base(owner.Backend, owner.DType, length)
    {
        _owner = owner;
        _stats = owner._stats;
        _pointer = owner._pointer + offset * owner.DType.Size();
    }

    public override bool IsDisposed => _owner?.IsDisposed ?? _pointer == null;

    /// <summary>Start of the elements; valid until the owning buffer is disposed.</summary>
    public void* Pointer
    {
        get
        {
            if (IsDisposed) throw new ObjectDisposedException(nameof(HostBuffer), "the host buffer was disposed");
            return _pointer;
        }
    }

    public Span<T> AsSpan<T>() where T : unmanaged => new(Pointer, checked((int)(Bytes / sizeof(T))));

    public override DeviceBuffer Slice(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) is outside {this}");
        return new HostBuffer(_owner ?? this, (_pointer - (_owner ?? this)._pointer) / DType.Size() + offset, length);
    }

    public override void Dispose()
    {
        if (_owner != null || _pointer == null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        _stats.Freed(Bytes);
    }
}

/// <summary>Memory management for the host tiers; the ops live in the partial classes of each tier.</summary>
public abstract class HostBackend : IDisposable
{
    public abstract string Name { get; }
    public MemoryStats Memory { get; } = new();

    /// <summary>Fill every uninitialized buffer with NaN (all bits set) instead of leaving what was in memory, so that an
    /// op's output it does not wholly write shows. The tests set it; a training run leaves it off.</summary>
    public static bool PoisonUninitialized { get; set; }

    public DeviceBuffer Allocate(DType dtype, long length) => Allocate(dtype, length, zeroed: true);

    /// <summary>Not cleared: clearing a step's outputs, which their ops overwrite anyway, cost a bench-UNet training step
    /// about 50 ms of 500 (520 MB a step written at 10 GB/s; Xeon with AVX-512, 2026-12-05).</summary>
    public DeviceBuffer AllocateUninitialized(DType dtype, long length) => Allocate(dtype, length, zeroed: false);

    DeviceBuffer Allocate(DType dtype, long length, bool zeroed)
    {
        if (length < 0) throw new ArgumentException($"allocate: length {length} is negative");
        return new HostBuffer((IBackend)this, dtype, length, zeroed);
    }

    public void Upload<T>(DeviceBuffer dst, ReadOnlySpan<T> src) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(src);
        if (bytes.Length != Host(dst).Bytes)
            throw new ArgumentException($"upload: {bytes.Length} bytes into {dst} ({dst.Bytes} bytes)");
        bytes.CopyTo(Host(dst).AsSpan<byte>());
    }

    public void Download<T>(Span<T> dst, DeviceBuffer src) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(dst);
        if (bytes.Length != Host(src).Bytes)
            throw new ArgumentException($"download: {src} ({src.Bytes} bytes) into {bytes.Length} bytes");
        Host(src).AsSpan<byte>().CopyTo(bytes);
    }

    public void Synchronize() { }

    public void Dispose() { }

    protected HostBuffer Host(DeviceBuffer buffer) =>
        buffer as HostBuffer is { } h && ReferenceEquals(h.Backend, this)
            ? h
            : throw new ArgumentException($"{Name}: buffer {buffer} belongs to backend '{buffer.Backend.Name}'");
}
