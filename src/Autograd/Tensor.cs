// Tensor: an n-dimensional view (shape, strides) of a device buffer, with its gradient and its place on the tape.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

/// <summary>
/// A tensor is a shape and row-major strides over a backend buffer. A tensor that owns its buffer frees it on Dispose;
/// views (reshape, permute, detach, and narrow where the slice is one contiguous run) borrow their source's buffer, or a
/// slice of it, and must not outlive it. Every tensor created inside a <see cref="TensorScope"/> is disposed with that
/// scope, so training loops never leave device memory to the GC.
/// Ops (in <see cref="F"/>) take any tensor; kernels read contiguous ones, so strided views are copied when needed.
/// </summary>
public sealed class Tensor : IDisposable
{
    readonly int[] _shape;
    readonly long[] _strides;
    readonly bool _ownsStorage;
    bool _disposed;

    Tensor(DeviceBuffer storage, int[] shape, long[] strides, bool ownsStorage, bool scoped)
    {
        Storage = storage;
        _shape = shape;
        _strides = strides;
        _ownsStorage = ownsStorage;
        if (scoped) TensorScope.Track(this);
    }

    /// <summary>The elements: for a contiguous tensor exactly Length of them from the buffer's start.</summary>
    public DeviceBuffer Storage { get; }
    public IBackend Backend => Storage.Backend;
    public DType DType => Storage.DType;
    public ReadOnlySpan<int> Shape => _shape;
    public ReadOnlySpan<long> Strides => _strides;
    public int Rank => _shape.Length;
    public long Length => ShapeLength(_shape);
    public int Dim(int axis) => _shape[axis < 0 ? axis + Rank : axis];
    public bool IsContiguous => _strides.AsSpan().SequenceEqual(RowMajorStrides(_shape));
    public bool IsDisposed => _disposed || Storage.IsDisposed;
    internal bool OwnsStorage => _ownsStorage;

    /// <summary>Whether backward computes a gradient for this tensor. Set it on leaves (inputs, parameters); op
    /// outputs get it when any input has it and the tape is recording.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>dLoss/dthis after <see cref="Backward"/>: kept for leaves (parameters, inputs), freed for op outputs
    /// as soon as their backward has run. Parameters' gradients are views of their store's flat gradient buffer.</summary>
    public Tensor? Grad { get; internal set; }

    /// <summary>True for tensors no op produced on the tape: their gradients are kept after backward.</summary>
    public bool IsLeaf { get; internal set; } = true;

    // ---- creation ----

    /// <summary>A new zero-filled contiguous tensor.</summary>
    public static Tensor Zeros(IBackend backend, DType dtype, params int[] shape) =>
        new(backend.Allocate(dtype, ShapeLength(CheckShape(shape))), (int[])shape.Clone(), RowMajorStrides(shape), true, true);

    public static Tensor Zeros(IBackend backend, params int[] shape) => Zeros(backend, DType.F32, shape);

    /// <summary>A new contiguous tensor whose contents are undefined, as torch.empty: for an op's output that its kernel
    /// overwrites (IBackend's convention: outputs and input gradients are overwritten, parameter gradients added to).</summary>
    public static Tensor Empty(IBackend backend, DType dtype, params int[] shape) =>
        new(backend.AllocateUninitialized(dtype, ShapeLength(CheckShape(shape))), (int[])shape.Clone(), RowMajorStrides(shape), true, true);

    public static Tensor Empty(IBackend backend, params int[] shape) => Empty(backend, DType.F32, shape);

    /// <summary>An uninitialized tensor with the shape and dtype of <paramref name="like"/>, contiguous.</summary>
    public static Tensor EmptyLike(Tensor like) => Empty(like.Backend, like.DType, like._shape);

    /// <summary>A zero-filled tensor with the shape and dtype of <paramref name="like"/>, contiguous.</summary>
    public static Tensor ZerosLike(Tensor like) => Zeros(like.Backend, like.DType, like._shape);

    public static Tensor FromArray(IBackend backend, float[] values, params int[] shape)
    {
        if (ShapeLength(CheckShape(shape)) != values.Length)
            throw new ArgumentException($"tensor: {values.Length} values do not fill shape {Format(shape)}");
        var t = Zeros(backend, DType.F32, shape);
        backend.Upload<float>(t.Storage, values);
        return t;
    }

    public static Tensor FromInts(IBackend backend, int[] values, params int[] shape)
    {
        if (ShapeLength(CheckShape(shape)) != values.Length)
            throw new ArgumentException($"tensor: {values.Length} values do not fill shape {Format(shape)}");
        var t = Zeros(backend, DType.I32, shape);
        backend.Upload<int>(t.Storage, values);
        return t;
    }

    /// <summary>N(0, 1) samples from the Philox stream (seed, counter offset): the same numbers on every backend.</summary>
    public static Tensor RandomNormal(IBackend backend, ulong seed, ulong offset, params int[] shape)
    {
        var t = Zeros(backend, DType.F32, shape);
        backend.RandomNormal(t.Storage, seed, offset);
        return t;
    }

    /// <summary>A tensor over a buffer someone else owns (a parameter's slice of a flat buffer); never scoped.</summary>
    public static Tensor Borrow(DeviceBuffer storage, params int[] shape)
    {
        if (ShapeLength(CheckShape(shape)) != storage.Length)
            throw new ArgumentException($"tensor: shape {Format(shape)} does not cover {storage}");
        return new Tensor(storage, (int[])shape.Clone(), RowMajorStrides(shape), false, false);
    }

    /// <summary>A view of this tensor's buffer or of a slice of it (reshape, permute, narrow; they record their own
    /// backward).</summary>
    internal Tensor View(DeviceBuffer storage, int[] shape, long[] strides) => new(storage, shape, strides, false, true);

    // ---- reading back ----

    /// <summary>The elements in row-major order, as f32 (f16/bf16 are widened exactly, ints converted).</summary>
    public float[] ToArray()
    {
        using var scope = new TensorScope();
        var t = F.Contiguous(this);
        var result = new float[t.Length];
        switch (t.DType)
        {
            case DType.F32:
                Backend.Download<float>(result, t.Storage);
                break;
            case DType.I32:
                var ints = new int[t.Length];
                Backend.Download<int>(ints, t.Storage);
                for (int i = 0; i < ints.Length; i++) result[i] = ints[i];
                break;
            default:
                using (var wide = Backend.Allocate(DType.F32, t.Length))
                {
                    Backend.Cast(wide, t.Storage);
                    Backend.Download<float>(result, wide);
                }
                break;
        }
        return result;
    }

    /// <summary>The single value of a one-element tensor (a loss).</summary>
    public float Item() => Length == 1 ? ToArray()[0] : throw new InvalidOperationException($"item: tensor {this} has {Length} elements");

    // ---- autograd ----

    /// <summary>Runs the tape backwards from this scalar: every tensor that requires grad receives dthis/dtensor.</summary>
    public void Backward(float seed = 1f) => Tape.Backward(this, seed);

    /// <summary>The same values, off the tape: a leaf whose gradient does not flow back (shares the buffer).</summary>
    public Tensor Detach() => View(Storage, _shape, _strides);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsStorage) Storage.Dispose();
    }

    public override string ToString() => $"{DType.Name()}{Format(_shape)}{(IsContiguous ? "" : " strided")}";

    // ---- shape helpers ----

    public static long ShapeLength(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    public static long[] RowMajorStrides(ReadOnlySpan<int> shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]; }
        return strides;
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    static int[] CheckShape(int[] shape)
    {
        foreach (int d in shape)
            if (d < 0) throw new ArgumentException($"tensor: shape {Format(shape)} has a negative dimension");
        return shape;
    }
}
