// The CUDA tier: every IBackend op validated like the host tiers, then run as the ILGPU kernels of this folder.
using DreamBooth.Kernels.Reference;
using ILGPU;
using ILGPU.Runtime;
using System.Numerics;
using System.Runtime.InteropServices;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// Runs on one IlgpuDevice (a CUDA GPU, or the CPU emulator in tests) and owns it. Every launch and copy goes to the
/// accelerator's default stream, so ops run in call order and a pooled block freed by one op can be handed to the next
/// without waiting. Memory comes from a pool: blocks are rounded up to a power of two of at least 256 bytes, kept in one
/// free list per size on Dispose of a buffer, and returned to the device only when the backend is disposed. Kernels
/// are compiled on first use and cached in fields. Argument checks are the shared Validate functions of the Reference
/// tier, so a bad call fails with the same message on every backend. Like the stream it drives, one backend is used
/// from one thread at a time.
/// </summary>
public sealed class IlgpuBackend : IBackend
{
    const int MinBlockBytes = 256;

    readonly IlgpuDevice _device;
    readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = [];
    readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _blocks = [];
    readonly MemoryBuffer1D<float, Stride1D.Dense> _placeholder;   // bound to absent optional views (bias), never read
    bool _disposed;

    public IlgpuBackend(IlgpuDevice device)
    {
        _device = device;
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

    public DeviceBuffer Allocate(DType dtype, long length)
    {
        if (length < 0) throw new ArgumentException($"allocate: length {length} is negative");
        ObjectDisposedException.ThrowIf(_disposed, this);
        long bytes = length * dtype.Size(), size = BlockBytes(bytes);
        if (!_free.TryGetValue(size, out var list) || !list.TryPop(out var block))
        {
            block = Acc.Allocate1D<byte>(size);
            _blocks.Add(block);
        }
        block.View.SubView(0, Math.Max(bytes, 1)).MemSetToZero();
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

    // ---- kernels, compiled on first use ----

    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>? _gemm;
    Action<KernelConfig, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, ArrayView<float>, GemmKernels.Args>? _gemmF16;
    Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>? _gemmBf16;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _conv;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convGradInput, _convGradWeight;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>? _convGradBias;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNorm;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNormDx;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNormParams;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>? _layerNorm, _layerNormDx, _layerNormParams;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>? _softmax;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>? _softmaxBackward;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attention;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionDelta;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionKey;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>? _attentionQuery;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>? _mseFinish;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>? _msePartial;

    Action<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>? _unary;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>? _unaryBackward;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>? _binary;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>? _binaryTerms;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>? _reduce;
    Action<Index1D, ArrayView<float>, ArrayView<float>, float>? _scale, _axpy;
    Action<Index1D, ArrayView<uint>, uint>? _fill32;
    Action<Index1D, ArrayView<ushort>, ushort>? _fill16;
    Action<Index1D, ArrayView<float>, ArrayView<float>, GegluKernels.Args>? _geglu;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GegluKernels.Args>? _gegluBackward;
    Action<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.StridedArgs>? _strided32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.StridedArgs>? _strided16;
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>? _concat32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>? _concat16;
    Action<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>? _slice32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>? _slice16;
    Action<Index1D, ArrayView<float>, ArrayView<float>, CopyKernels.AxisArgs>? _sliceBackward;
    Action<Index1D, ArrayView<ushort>, ArrayView<float>>? _castF32F16, _castF32Bf16;
    Action<Index1D, ArrayView<float>, ArrayView<ushort>>? _castF16F32, _castBf16F32;
    Action<Index1D, ArrayView<ushort>, ArrayView<ushort>>? _castF16Bf16, _castBf16F16;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.BackwardArgs>? _mseBackward;
    Action<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>? _upsample, _upsampleBackward;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>? _embedding, _embeddingBackward;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernels.Constants>? _adamw;
    Action<Index1D, ArrayView<float>, PhiloxKernels.Args>? _uniform, _normal;

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

    // ---- matrix products and convolution ----

    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s)
    {
        s.Validate(c, a, b, bias);
        const string op = "gemm";
        ArrayView<float> vc = F(op, c), vbias = FOrPlaceholder(op, bias);
        switch (a.DType)
        {
            case DType.F32:
                _gemm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmKernels.Args>(GemmKernels.Tiled);
                Gemm(_gemm, vc, F(op, a), F(op, b), vbias, s, bias != null);
                break;
            case DType.F16:
                _gemmF16 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, ArrayView<float>, GemmKernels.Args>(GemmKernels.TiledF16);
                Gemm(_gemmF16, vc, Buf(op, a).View.Cast<ILGPU.Half>(), Buf(op, b).View.Cast<ILGPU.Half>(), vbias, s, bias != null);
                break;
            default:
                _gemmBf16 ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, GemmKernels.Args>(GemmKernels.TiledBf16);
                Gemm(_gemmBf16, vc, Buf(op, a).U16, Buf(op, b).U16, vbias, s, bias != null);
                break;
        }
    }

    /// <summary>Launches one GEMM kernel (of A and B's element type T) over the batch.</summary>
    static void Gemm<T>(Action<KernelConfig, ArrayView<float>, ArrayView<T>, ArrayView<T>, ArrayView<float>, GemmKernels.Args> kernel,
        ArrayView<float> c, ArrayView<T> a, ArrayView<T> b, ArrayView<float> bias, in GemmShape s, bool hasBias) where T : unmanaged
    {
        if (s.Batch == 1 || s.BatchStrideC >= (long)s.M * s.N)
        {
            kernel(WithinGridLimits("gemm", GemmKernels.Config(s)), c, a, b, bias, GemmKernels.Args.From(s, hasBias));
            return;
        }
        // Batches whose C overlap (StrideC 0: a sum over the batch) would race inside one launch: run them in order,
        // which is exactly the sequential definition C ← α·A[b]B[b] + β·C (+ bias) for b = 0, 1, ...
        var one = s with { Batch = 1 };
        var config = WithinGridLimits("gemm", GemmKernels.Config(one));
        for (int i = 0; i < s.Batch; i++)
            kernel(config, c.SubView(i * s.BatchStrideC), a.SubView(i * s.BatchStrideA),
                b.SubView(i * s.BatchStrideB), bias, GemmKernels.Args.From(one, hasBias));
    }

    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s)
    {
        Conv2dReference.ValidateForward(y, x, w, bias, s);
        const string op = "conv2d";
        _conv ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.Forward);
        _conv(Conv2dKernels.ForwardConfig(s), F(op, y), F(op, x), F(op, w), FOrPlaceholder(op, bias), Conv2dKernels.Args.From(s, bias != null));
    }

    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s)
    {
        Conv2dReference.ValidateGradInput(dx, dy, w, s);
        const string op = "conv2d grad input";
        _convGradInput ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradInput);
        _convGradInput(Conv2dKernels.GradInputConfig(s), F(op, dx), F(op, dy), F(op, w), Conv2dKernels.Args.From(s, false));
    }

    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s)
    {
        Conv2dReference.ValidateGradWeight(dw, dbias, dy, x, s);
        const string op = "conv2d grad weight";
        _convGradWeight ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradWeight);
        var args = Conv2dKernels.Args.From(s, dbias != null);
        _convGradWeight(Conv2dKernels.GradWeightConfig(s), F(op, dw), F(op, dy), F(op, x), args);
        if (dbias == null) return;
        _convGradBias ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, Conv2dKernels.Args>(Conv2dKernels.GradBias);
        _convGradBias(Conv2dKernels.GradBiasConfig(s), F(op, dbias), F(op, dy), args);
    }

    // ---- normalisation, softmax, attention ----

    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int n, int c, int hw, int groups, float eps, bool silu)
    {
        GroupNormReference.ValidateForward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, eps);
        const string op = "group norm";
        _groupNorm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.Forward);
        var args = GroupNormKernels.Args.From(n, c, hw, groups, eps, silu);
        _groupNorm(GroupNormKernels.Config(args), F(op, y), F(op, mean), F(op, rstd), F(op, x), F(op, gamma), F(op, beta), args);
    }

    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu)
    {
        GroupNormReference.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups);
        const string op = "group norm backward";
        _groupNormParams ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardParams);
        _groupNormDx ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardDx);
        var args = GroupNormKernels.Args.From(n, c, hw, groups, 0f, silu);
        // Parameter gradients first: they read dy, which dx may overwrite in place.
        _groupNormParams(GroupNormKernels.ParamConfig(args), F(op, dgamma), F(op, dbeta), F(op, dy), F(op, x), F(op, mean), F(op, rstd),
            F(op, gamma), F(op, beta), args);
        _groupNormDx(GroupNormKernels.Config(args), F(op, dx), F(op, dy), F(op, x), F(op, mean), F(op, rstd), F(op, gamma), F(op, beta), args);
    }

    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int rows, int dim, float eps)
    {
        LayerNormReference.ValidateForward(y, mean, rstd, x, gamma, beta, rows, dim, eps);
        const string op = "layer norm";
        _layerNorm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.Forward);
        var args = LayerNormKernels.Args.From(rows, dim, eps);
        _layerNorm(LayerNormKernels.Config(args), F(op, y), F(op, mean), F(op, rstd), F(op, x), F(op, gamma), F(op, beta), args);
    }

    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        LayerNormReference.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, rows, dim);
        const string op = "layer norm backward";
        _layerNormParams ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardParams);
        _layerNormDx ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormKernels.Args>(LayerNormKernels.BackwardDx);
        var args = LayerNormKernels.Args.From(rows, dim);
        // Parameter gradients first: they read dy, which dx may overwrite in place.
        _layerNormParams(LayerNormKernels.ParamConfig(args), F(op, dgamma), F(op, dbeta), F(op, dy), F(op, x), F(op, mean), F(op, rstd), args);
        _layerNormDx(LayerNormKernels.Config(args), F(op, dx), F(op, dy), F(op, x), F(op, mean), F(op, rstd), F(op, gamma), args);
    }

    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols)
    {
        SoftmaxReference.Validate("softmax", y, "y", x, "x", x, "x", rows, cols);
        const string op = "softmax";
        _softmax ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Forward);
        var args = SoftmaxKernels.Args.From(rows, cols);
        _softmax(SoftmaxKernels.Config(args), F(op, y), F(op, x), args);
    }

    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols)
    {
        SoftmaxReference.Validate("softmax_backward", dx, "dx", dy, "dy", y, "y", rows, cols);
        const string op = "softmax_backward";
        _softmaxBackward ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, SoftmaxKernels.Args>(SoftmaxKernels.Backward);
        var args = SoftmaxKernels.Args.From(rows, cols);
        _softmaxBackward(SoftmaxKernels.Config(args), F(op, dx), F(op, dy), F(op, y), args);
    }

    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        AttentionReference.ValidateForward(o, lse, q, k, v, s);
        const string op = "attention";
        _attention ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.Forward);
        _attention(WithinGridLimits(op, AttentionKernels.ForwardConfig(s)), F(op, o), F(op, lse), F(op, q), F(op, k), F(op, v), AttentionKernels.Args.From(s));
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        AttentionReference.ValidateBackward(dq, dk, dv, dout, q, k, v, o, lse, s);
        const string op = "attention backward";
        _attentionDelta ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.Delta);
        _attentionKey ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.KeyGrad);
        _attentionQuery ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionKernels.Args>(AttentionKernels.QueryGrad);
        var args = AttentionKernels.Args.From(s);
        KernelConfig keyConfig = WithinGridLimits(op, AttentionKernels.KeyGradConfig(s)), queryConfig = WithinGridLimits(op, AttentionKernels.QueryGradConfig(s));
        using var delta = Scratch(s.LseLength);   // Δ = rowsum(dO ∘ O), (B, H, Lq)
        ArrayView<float> vdout = F(op, dout), vq = F(op, q), vk = F(op, k), vv = F(op, v), vlse = F(op, lse);
        _attentionDelta(AttentionKernels.DeltaConfig(s), delta.F32, vdout, F(op, o), args);
        _attentionKey(keyConfig, F(op, dk), F(op, dv), vdout, vq, vk, vv, vlse, delta.F32, args);
        _attentionQuery(queryConfig, F(op, dq), vdout, vq, vk, vv, vlse, delta.F32, args);
    }

    // ---- elementwise and broadcasting ----

    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        UnaryReference.Validate("unary", op, n, ("y", y), ("x", x));
        _unary ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Forward);
        _unary(Count("unary", n), F("unary", y), F("unary", x), UnaryKernels.Args.From(op));
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n)
    {
        const string name = "unary backward";
        UnaryReference.Validate(name, op, n, ("dx", dx), ("dy", dy), ("x", x));
        _unaryBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, UnaryKernels.Args>(UnaryKernels.Backward);
        _unaryBackward(Count(name, n), F(name, dx), F(name, dy), F(name, x), UnaryKernels.Args.From(op));
    }

    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        const string name = "binary";
        BinaryReference.Validate(name, op, y, a, b, aShape, bShape);
        _binary ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>(BinaryKernels.Forward);
        var args = BinaryKernels.Args.From(op, aShape, bShape);
        _binary(args.Count, F(name, y), F(name, a), F(name, b), args);
    }

    /// <summary>The terms kernel writes ∂y/∂a·dy and ∂y/∂b·dy at output coordinates, straight into da or db when that
    /// operand has the full broadcast shape, else into pooled scratch that ReduceKernels.Sum folds into the gradient.</summary>
    public void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        const string name = "binary backward";
        BinaryReference.ValidateBackward(op, da, db, dy, a, b, aShape, bShape);
        if (da == null && db == null) return;
        int[] shape = BinaryReference.BroadcastShape(name, aShape, bShape);
        long total = dy.Length;
        _binaryTerms ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, BinaryKernels.Args>(BinaryKernels.BackwardTerms);
        using var scratchA = da != null && da.Length != total ? Scratch(total) : null;
        using var scratchB = db != null && db.Length != total ? Scratch(total) : null;
        ArrayView<float> ta = da == null ? Placeholder : scratchA?.F32 ?? F(name, da);
        ArrayView<float> tb = db == null ? Placeholder : scratchB?.F32 ?? F(name, db);
        var args = BinaryKernels.Args.From(op, aShape, bShape, da != null, db != null);
        _binaryTerms(args.Count, ta, tb, F(name, dy), F(name, a), F(name, b), args);
        if (scratchA != null) Fold(F(name, da!), scratchA.F32, shape, aShape);
        if (scratchB != null) Fold(F(name, db!), scratchB.F32, shape, bShape);
    }

    /// <summary>dst (operand shape) = term (broadcast shape) summed over the dims the operand was broadcast along.</summary>
    void Fold(ArrayView<float> dst, ArrayView<float> term, int[] shape, ReadOnlySpan<int> operandShape)
    {
        var padded = new int[shape.Length];
        for (int d = 0; d < shape.Length; d++) padded[d] = BinaryReference.Dim(operandShape, d, shape.Length);
        _reduce ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        var args = ReduceKernels.Args.From(shape, padded, 1f);
        _reduce(args.Count, dst, term, args);
    }

    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryReference.ValidateScaled("scale", y, x, n);
        _scale ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Scale);
        _scale(Count("scale", n), F("scale", y), F("scale", x), alpha);
    }

    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryReference.ValidateScaled("axpy", y, x, n);
        _axpy ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Axpy);
        _axpy(Count("axpy", n), F("axpy", y), F("axpy", x), alpha);
    }

    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        GegluReference.Validate("geglu", rows, dim, ("y", y, 1), ("x", x, 2));
        _geglu ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, GegluKernels.Args>(GegluKernels.Forward);
        var args = GegluKernels.Args.From(rows, dim);
        _geglu(rows * dim, F("geglu", y), F("geglu", x), args);
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        const string name = "geglu backward";
        GegluReference.Validate(name, rows, dim, ("dx", dx, 2), ("dy", dy, 1), ("x", x, 2));
        _gegluBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GegluKernels.Args>(GegluKernels.Backward);
        var args = GegluKernels.Args.From(rows, dim);
        _gegluBackward(rows * dim, F(name, dx), F(name, dy), F(name, x), args);
    }

    // ---- data movement (any dtype) ----

    public void Fill(DeviceBuffer y, float value)
    {
        CopyReference.ValidateFill(y);
        var buffer = Buf("fill", y);
        if (y.Length == 0) return;
        uint bits = CopyReference.FillBits(y.DType, value);
        int n = Count("fill", y.Length);
        if (y.DType.Size() == 4)
        {
            _fill32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, uint>(ElementwiseKernels.Fill32);
            _fill32(n, buffer.View.Cast<uint>(), bits);
        }
        else
        {
            _fill16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ushort>(ElementwiseKernels.Fill16);
            _fill16(n, buffer.U16, (ushort)bits);
        }
    }

    public void Copy(DeviceBuffer dst, DeviceBuffer src)
    {
        CopyReference.ValidateCopy(dst, src);
        CopyBytes(Buf("copy", dst).View, Buf("copy", src).View);
    }

    void CopyBytes(ArrayView<byte> dst, ArrayView<byte> src)
    {
        if (src.Length > 0) src.CopyTo(Stream, dst);
    }

    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset)
    {
        const string name = "strided copy";
        CopyReference.ValidateStridedCopy(dst, src, shape, srcStrides, srcOffset);
        IlgpuBuffer d = Buf(name, dst), s = Buf(name, src);
        var args = CopyKernels.StridedArgs.From(shape, srcStrides, srcOffset);
        if (args.Count == 0) return;
        if (dst.DType.Size() == 4)
        {
            _strided32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy32);
            _strided32(args.Count, d.I32, s.I32, args);
        }
        else
        {
            _strided16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.StridedArgs>(CopyKernels.StridedCopy16);
            _strided16(args.Count, d.U16, s.U16, args);
        }
    }

    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        const string name = "concat";
        ConcatSliceReference.ValidateConcat(y, a, b, outer, aAxis, bAxis, inner);
        IlgpuBuffer vy = Buf(name, y), va = Buf(name, a), vb = Buf(name, b);
        var args = CopyKernels.AxisArgs.Concat(aAxis, bAxis, inner);
        int n = Count(name, y.Length);
        if (y.DType.Size() == 4)
        {
            _concat32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Concat32);
            _concat32(n, vy.I32, va.I32, vb.I32, args);
        }
        else
        {
            _concat16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Concat16);
            _concat16(n, vy.U16, va.U16, vb.U16, args);
        }
    }

    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner)
    {
        const string name = "slice";
        ConcatSliceReference.ValidateSlice(name, y, x, outer, xAxis, start, yAxis, inner);
        IlgpuBuffer vy = Buf(name, y), vx = Buf(name, x);
        var args = CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner);
        int n = Count(name, y.Length);
        if (y.DType.Size() == 4)
        {
            _slice32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, CopyKernels.AxisArgs>(CopyKernels.Slice32);
            _slice32(n, vy.I32, vx.I32, args);
        }
        else
        {
            _slice16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, CopyKernels.AxisArgs>(CopyKernels.Slice16);
            _slice16(n, vy.U16, vx.U16, args);
        }
    }

    /// <summary>4-byte dtypes: the slice backward kernel moves the bits (as f32, a plain load and store). 2-byte dtypes
    /// (no gradient flows through them in training): dx zeroed, then one device copy per outer row.</summary>
    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner)
    {
        const string name = "slice backward";
        ConcatSliceReference.ValidateSlice(name, dy, dx, outer, xAxis, start, yAxis, inner, "dy", "dx");
        IlgpuBuffer vdx = Buf(name, dx), vdy = Buf(name, dy);
        if (dx.DType.Size() == 4)
        {
            _sliceBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, CopyKernels.AxisArgs>(CopyKernels.SliceBackward);
            _sliceBackward(Count(name, dx.Length), vdx.F32, vdy.F32, CopyKernels.AxisArgs.Slice(xAxis, start, yAxis, inner));
            return;
        }
        long size = dx.DType.Size(), xRow = (long)xAxis * inner * size, yRow = (long)yAxis * inner * size, before = (long)start * inner * size;
        vdx.View.MemSetToZero(Stream);
        for (long o = 0; o < outer; o++)
            CopyBytes(vdx.View.SubView(o * xRow + before, yRow), vdy.View.SubView(o * yRow, yRow));
    }

    public void Cast(DeviceBuffer dst, DeviceBuffer src)
    {
        CastReference.Validate(dst, src);
        IlgpuBuffer d = Buf("cast", dst), s = Buf("cast", src);
        if (src.Length == 0) return;
        if (dst.DType == src.DType) { CopyBytes(d.View, s.View); return; }
        int n = Count("cast", src.Length);
        switch (src.DType, dst.DType)
        {
            case (DType.F32, DType.F16):
                (_castF32F16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToF16))(n, d.U16, s.F32);
                break;
            case (DType.F32, DType.BF16):
                (_castF32Bf16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(CastKernels.F32ToBf16))(n, d.U16, s.F32);
                break;
            case (DType.F16, DType.F32):
                (_castF16F32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.F16ToF32))(n, d.F32, s.U16);
                break;
            case (DType.BF16, DType.F32):
                (_castBf16F32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(CastKernels.Bf16ToF32))(n, d.F32, s.U16);
                break;
            case (DType.F16, DType.BF16):
                (_castF16Bf16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.F16ToBf16))(n, d.U16, s.U16);
                break;
            default: // (BF16, F16), the only pair left after validation
                (_castBf16F16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>>(CastKernels.Bf16ToF16))(n, d.U16, s.U16);
                break;
        }
    }

    // ---- reductions and losses ----

    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        ReduceReference.Validate(y, x, xShape, yShape);
        _reduce ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        var args = ReduceKernels.Args.From(xShape, yShape, scale);
        _reduce(args.Count, F("reduce sum", y), F("reduce sum", x), args);
    }

    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        ReduceReference.ValidateSumSquares(result, x, n);
        var vx = F("sum squares", x);
        TwoLevelSum(F("sum squares", result), vx, vx, MseLossKernels.Args.SumSquares(n), n);   // b is not read
    }

    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n)
    {
        MseLossReference.Validate("mse loss", loss, "loss", 1, a, b, n);
        TwoLevelSum(F("mse loss", loss), F("mse loss", a), F("mse loss", b), MseLossKernels.Args.Mse(n), n);
    }

    /// <summary>Partials per group into pooled scratch, then one group folds them: deterministic, no atomics.</summary>
    void TwoLevelSum(ArrayView<float> result, ArrayView<float> a, ArrayView<float> b, MseLossKernels.Args args, long n)
    {
        _msePartial ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Partial);
        _mseFinish ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Finish);
        using var partials = Scratch(MseLossKernels.Groups(n));
        _msePartial(MseLossKernels.PartialConfig(n), partials.F32, a, b, args);
        _mseFinish(MseLossKernels.FinishConfig, result, partials.F32, args);
    }

    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n)
    {
        const string name = "mse loss backward";
        MseLossReference.Validate(name, da, "da", n, a, b, n);
        _mseBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.BackwardArgs>(MseLossKernels.Backward);
        _mseBackward(Count(name, n), F(name, da), F(name, a), F(name, b), MseLossKernels.BackwardArgs.From(gradLoss, n));
    }

    // ---- resampling and lookup ----

    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w)
    {
        const string name = "upsample nearest 2x";
        UpsampleReference.Validate(name, y, "y", x, "x", planes, h, w);
        _upsample ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Forward);
        var args = UpsampleKernels.Args.From(planes, h, w);
        _upsample(4 * planes * h * w, F(name, y), F(name, x), args);
    }

    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w)
    {
        const string name = "upsample nearest 2x backward";
        UpsampleReference.Validate(name, dy, "dy", dx, "dx", planes, h, w);
        _upsampleBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, UpsampleKernels.Args>(UpsampleKernels.Backward);
        var args = UpsampleKernels.Args.From(planes, h, w);
        _upsampleBackward(planes * h * w, F(name, dx), F(name, dy), args);
    }

    /// <summary>The ids are checked on the host first (a small download), like the host tiers do.</summary>
    int[] HostIds(string op, DeviceBuffer ids, int vocab)
    {
        var host = new int[ids.Length];
        Download<int>(host, ids);
        EmbeddingReference.CheckIds(op, host, vocab);
        return host;
    }

    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        const string name = "embedding";
        int vocab = EmbeddingReference.Validate(name, "y", y, "table", table, ids, count, dim);
        HostIds(name, ids, vocab);
        _embedding ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(EmbeddingKernels.Forward);
        _embedding(count * dim, F(name, y), F(name, table), Buf(name, ids).I32, EmbeddingKernels.Args.From(count, dim, vocab));
    }

    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim)
    {
        const string name = "embedding backward";
        int vocab = EmbeddingReference.Validate(name, "dy", dy, "dtable", dtable, ids, count, dim);
        HostIds(name, ids, vocab);
        _embeddingBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, EmbeddingKernels.Args>(EmbeddingKernels.Backward);
        _embeddingBackward(dim, F(name, dtable), F(name, dy), Buf(name, ids).I32, EmbeddingKernels.Args.From(count, dim, vocab));
    }

    // ---- optimizer and random numbers ----

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        const string name = "adamw";
        AdamWReference.Validate(param, grad, m, v, s, n);
        _adamw ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernels.Constants>(AdamWKernels.Step);
        _adamw(Count(name, n), F(name, param), F(name, grad), F(name, m), F(name, v), AdamWKernels.Constants.From(s));
    }

    public void RandomUniform(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxReference.Validate("random uniform", y);
        if (y.Length == 0) return;
        _uniform ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Uniform);
        var args = PhiloxKernels.Args.From(seed, offset, y.Length);
        _uniform(args.Blocks, F("random uniform", y), args);
    }

    public void RandomNormal(DeviceBuffer y, ulong seed, ulong offset)
    {
        PhiloxReference.Validate("random normal", y);
        if (y.Length == 0) return;
        _normal ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, PhiloxKernels.Args>(PhiloxKernels.Normal);
        var args = PhiloxKernels.Args.From(seed, offset, y.Length);
        _normal(args.Blocks, F("random normal", y), args);
    }
}
