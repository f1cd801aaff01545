// CUDA-tier broadcasting add/sub/mul/div: forward one thread per output element, backward as per-element terms then ReduceKernels.Sum.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>? _binary;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BinaryKernels.Args>? _binaryTerms;

    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        const string name = "binary";
        BinaryChecks.Validate(name, op, y, a, b, aShape, bShape);
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
        BinaryChecks.ValidateBackward(op, da, db, dy, a, b, aShape, bShape);
        if (da == null && db == null) return;
        int[] shape = Broadcasting.Shape(name, aShape, bShape);
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
        for (int d = 0; d < shape.Length; d++) padded[d] = Broadcasting.Dim(operandShape, d, shape.Length);
        _reduce ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ReduceKernels.Args>(ReduceKernels.Sum);
        var args = ReduceKernels.Args.From(shape, padded, 1f);
        _reduce(args.Count, dst, term, args);
    }
}

/// <summary>
/// NumPy broadcasting over up to 6 dims (BinaryReference). Thread i owns output element i (row-major in the broadcast
/// shape Y): it turns i into coordinates once and reads a and b through their broadcast strides (0 along broadcast dims),
/// so consecutive threads write consecutive y and read a, b coalesced or as one broadcast value. The backward writes
/// the two partial-derivative terms at output coordinates (ta, tb, shaped like y; the caller may pass da or db
/// directly when that operand is not broadcast), and ReduceKernels.Sum then sums each term over the dims its operand
/// was broadcast along, deterministically. Element counts below 2^31 per launch.
/// </summary>
public static class BinaryKernels
{
    public readonly record struct Args(int Op, Dims6 Y, Strides6 A, Strides6 B, int WantA, int WantB)
    {
        /// <summary>Shapes as given to BinaryReference (any rank ≤ 6); wantA/wantB choose which backward terms are written.</summary>
        public static Args From(BinaryOp op, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape, bool wantA = true, bool wantB = true)
        {
            Dims6 a = Dims6.From(aShape), b = Dims6.From(bShape);
            var y = Dims6.From(Broadcasting.Shape("binary", aShape, bShape));
            return new((int)op, y, Strides6.Broadcast(a), Strides6.Broadcast(b), wantA ? 1 : 0, wantB ? 1 : 0);
        }

        public int Count => checked((int)Y.Count);
    }

    [GpuKernel("binary_f32")]
    public static void Forward(Index1D i, ArrayView<float> y, ArrayView<float> a, ArrayView<float> b, Args p) // y (Y) a (aShape) b (bShape)
    {
        float va = a[p.Y.Offset(i, p.A)], vb = b[p.Y.Offset(i, p.B)];
        y[i] = p.Op == (int)BinaryOp.Add ? va + vb : p.Op == (int)BinaryOp.Sub ? va - vb : p.Op == (int)BinaryOp.Mul ? va * vb : va / vb;
    }

    /// <summary>ta[i], tb[i] = ∂y/∂a·dy, ∂y/∂b·dy at output element i; an unwanted term is not written (its view may be a
    /// 1-element placeholder).</summary>
    [GpuKernel("binary_backward_terms_f32")]
    public static void BackwardTerms(Index1D i, ArrayView<float> ta, ArrayView<float> tb, ArrayView<float> dy, // ta, tb, dy (Y)
        ArrayView<float> a, ArrayView<float> b, Args p)                                                          // a (aShape) b (bShape)
    {
        float g = dy[i];
        if (p.WantA != 0)
        {
            if (p.Op == (int)BinaryOp.Add || p.Op == (int)BinaryOp.Sub) ta[i] = g;                 // ∂(a±b)/∂a = 1
            else if (p.Op == (int)BinaryOp.Mul) ta[i] = g * b[p.Y.Offset(i, p.B)];                 // ∂(ab)/∂a = b
            else ta[i] = g / b[p.Y.Offset(i, p.B)];                                                // ∂(a/b)/∂a = 1/b
        }
        if (p.WantB != 0)
        {
            if (p.Op == (int)BinaryOp.Add) tb[i] = g;                                              // ∂(a+b)/∂b = 1
            else if (p.Op == (int)BinaryOp.Sub) tb[i] = -g;                                        // ∂(a−b)/∂b = −1
            else if (p.Op == (int)BinaryOp.Mul) tb[i] = g * a[p.Y.Offset(i, p.A)];                 // ∂(ab)/∂b = a
            else
            {
                float vb = b[p.Y.Offset(i, p.B)];
                tb[i] = -g * a[p.Y.Offset(i, p.A)] / (vb * vb);                                    // ∂(a/b)/∂b = −a/b²
            }
        }
    }
}
