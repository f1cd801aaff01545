// The CUDA tier's backend: device memory (a pool), copies, streams and launch limits. Each op's dispatch lives in its
// own file beside its kernels (Gemm.cs, Conv2d.cs, ...), as one part of this partial class.
using ILGPU;
using ILGPU.Runtime;
using System.Numerics;
using System.Runtime.InteropServices;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// Runs on one IlgpuDevice (a CUDA GPU, or the CPU emulator in tests) and owns it. Every launch and copy goes to the
/// accelerator's default stream, so ops run in call order and a pooled block freed by one op can be handed to the next
/// without waiting. Memory comes from a pool: blocks are rounded up to a power of two of at least 256 bytes, kept in one
/// free list per size on Dispose of a buffer, and returned to the device only when the backend is disposed. Kernels are
/// compiled on first use and cached in fields, declared in the op's file. Argument checks are the shared ones on the
/// shape records (OpShapes.cs, OpChecks.cs), so a bad call fails with the same message on every backend. Like the stream it
/// drives, one backend is used from one thread at a time.
/// </summary>
public sealed partial class IlgpuBackend : IBackend
{
    const int MinBlockBytes = 256;

    readonly IlgpuDevice _device;
    readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = [];
    readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _blocks = [];
    readonly MemoryBuffer1D<float, Stride1D.Dense> _placeholder;   // bound to absent optional views (bias), never read
    bool _disposed;

    readonly bool _tensorCores;

    /// <summary>A backend on the device. tensorCores false: f16/bf16 GEMMs take the kernels that GPUs without mma.sync
    /// m16n8k16 run, and AllowTf32 has no effect, as on such a GPU (the tests check those kernels so).</summary>
    public IlgpuBackend(IlgpuDevice device, bool tensorCores = true)
    {
        _device = device;
        _tensorCores = tensorCores;
        _placeholder = Acc.Allocate1D<float>(1);
        _placeholder.MemSetToZero();
    }

    public string Name => "cuda";
    public MemoryStats Memory { get; } = new();
    public IlgpuDevice Device => _device;
    Accelerator Acc => _device.Accelerator;
    ArrayView<float> Placeholder => _placeholder.View;

    // ---- memory ----

    /// <summary>Pooled blocks are this many bytes: a power of two, at least 256.</summary>
    public static long BlockBytes(long bytes) => Math.Max(MinBlockBytes, (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(bytes, 1)));

    /// <summary>Blocks held by the pool (in use or free).</summary>
    public int PooledBlocks => _blocks.Count;

    public DeviceBuffer Allocate(DType dtype, long length) => Allocate(dtype, length, zeroed: true);

    public DeviceBuffer AllocateUninitialized(DType dtype, long length) => Allocate(dtype, length, zeroed: false);

    DeviceBuffer Allocate(DType dtype, long length, bool zeroed)
    {
        if (length < 0) throw new ArgumentException($"allocate: length {length} is negative");
        ObjectDisposedException.ThrowIf(_disposed, this);
        long bytes = length * dtype.Size(), size = BlockBytes(bytes);
        if (!_free.TryGetValue(size, out var list) || !list.TryPop(out var block))
        {
            block = Acc.Allocate1D<byte>(size);
            _blocks.Add(block);
        }
        if (zeroed) block.View.SubView(0, Math.Max(bytes, 1)).MemSetToZero();
        Memory.Allocated(bytes);
        return new IlgpuBuffer(this, dtype, length, block);
    }

    /// <summary>Called by an owning IlgpuBuffer's Dispose: the block goes back to its size's free list.</summary>
    internal void Release(MemoryBuffer1D<byte, Stride1D.Dense> block, long bytes)
    {
        Memory.Freed(bytes);
        if (_disposed) return;
        if (!_free.TryGetValue(block.Length, out var list)) _free[block.Length] = list = new();
        list.Push(block);
    }

    IlgpuBuffer Scratch(long floats) => (IlgpuBuffer)Allocate(DType.F32, floats);

    public void Upload<T>(DeviceBuffer dst, ReadOnlySpan<T> src) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(src);
        var d = Buf("upload", dst);
        if (bytes.Length != d.Bytes) throw new ArgumentException($"upload: {bytes.Length} bytes into {dst} ({dst.Bytes} bytes)");
        if (bytes.Length > 0) d.View.CopyFromCPU(bytes);
    }

    public void Download<T>(Span<T> dst, DeviceBuffer src) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(dst);
        var s = Buf("download", src);
        if (bytes.Length != s.Bytes) throw new ArgumentException($"download: {src} ({src.Bytes} bytes) into {bytes.Length} bytes");
        Acc.Synchronize();
        if (bytes.Length > 0) s.View.CopyToCPU(bytes);
    }

    public void Synchronize() => Acc.Synchronize();

    public void Dispose()
    {
        if (_disposed) return;
        Acc.Synchronize();
        _disposed = true;
        foreach (var block in _blocks) block.Dispose();
        _blocks.Clear();
        _free.Clear();
        _placeholder.Dispose();
        _dynamicMaps?.Dispose();
        _device.Dispose();
    }

    /// <summary>The buffer as this backend's, or a clear error naming the op.</summary>
    IlgpuBuffer Buf(string op, DeviceBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer, op);
        if (buffer is not IlgpuBuffer b || !ReferenceEquals(b.Backend, this))
            throw new ArgumentException($"{op}: buffer {buffer} belongs to backend '{buffer.Backend.Name}', not '{Name}'");
        if (b.IsDisposed) throw new ObjectDisposedException(op, $"{op}: buffer {buffer} was disposed");
        return b;
    }

    ArrayView<float> F(string op, DeviceBuffer buffer) => Buf(op, buffer).F32;
    ArrayView<float> FOrPlaceholder(string op, DeviceBuffer? buffer) => buffer == null ? Placeholder : F(op, buffer);

    AcceleratorStream Stream => Acc.DefaultStream;

    /// <summary>CUDA caps a grid at 65535 groups along y and z (x goes to 2³¹ − 1).</summary>
    const int MaxGridYZ = 65535;

    /// <summary>The config, once its grid is within CUDA's limits: a clear error instead of a failed launch.</summary>
    static KernelConfig WithinGridLimits(string op, KernelConfig config) =>
        config.GridDim.Y <= MaxGridYZ && config.GridDim.Z <= MaxGridYZ ? config
        : throw new ArgumentException($"{op}: a launch grid of {config.GridDim.X}×{config.GridDim.Y}×{config.GridDim.Z} groups " +
                                      $"exceeds CUDA's limit of {MaxGridYZ} along y and z (for gemm: 64-row tiles of M and the " +
                                      "batch; for attention: batch × heads)");

    /// <summary>The thread count of an implicitly grouped launch over count elements (ILGPU indexes with int).</summary>
    static int Count(string op, long count) =>
        count < int.MaxValue ? (int)count : throw new ArgumentException($"{op}: {count} elements exceed one CUDA launch (2^31)");
}
