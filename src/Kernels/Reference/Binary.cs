// Broadcasting binary ops (add, sub, mul, div) and their backward, plus Scale (y = αx) and Axpy (y += αx).
namespace DreamBooth.Kernels.Reference;

public static class BinaryReference
{
    /// <summary>Element strides of a shape as seen from the output's coordinates: 0 along broadcast dims.</summary>
    static long[] BroadcastStrides(ReadOnlySpan<int> shape, int[] outShape)
    {
        int rank = outShape.Length;
        var strides = new long[rank];
        long stride = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            int size = Broadcasting.Dim(shape, d, rank);
            strides[d] = size == 1 ? 0 : stride;
            stride *= size;
        }
        return strides;
    }

    /// <summary>For output element i (row-major in outShape), the index of its a and b operands.</summary>
    static (long A, long B) Operands(long i, int[] outShape, long[] aStrides, long[] bStrides)
    {
        long ia = 0, ib = 0;
        for (int d = outShape.Length - 1; d >= 0; d--)
        {
            long coord = i % outShape[d];
            i /= outShape[d];
            ia += coord * aStrides[d];
            ib += coord * bStrides[d];
        }
        return (ia, ib);
    }

    public static double Apply(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static void Forward(BinaryOp op, Span<double> y, ReadOnlySpan<double> a, ReadOnlySpan<double> b, // y (broadcast shape)
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)                                                   // a (aShape) b (bShape)
    {
        int[] shape = Broadcasting.Shape("binary", aShape, bShape);
        long[] sa = BroadcastStrides(aShape, shape), sb = BroadcastStrides(bShape, shape);
        for (int i = 0; i < y.Length; i++)
        {
            var (ia, ib) = Operands(i, shape, sa, sb);
            y[i] = Apply(op, a[(int)ia], b[(int)ib]);
        }
    }

    /// <summary>da, db (empty when not wanted) are overwritten; every output element adds its partial derivatives into
    /// the operand elements it read, which sums the gradient over broadcast dims.</summary>
    public static void Backward(BinaryOp op, Span<double> da, Span<double> db, ReadOnlySpan<double> dy, // da (aShape) db (bShape) dy (broadcast)
        ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        int[] shape = Broadcasting.Shape("binary backward", aShape, bShape);
        long[] sa = BroadcastStrides(aShape, shape), sb = BroadcastStrides(bShape, shape);
        da.Clear();
        db.Clear();
        for (int i = 0; i < dy.Length; i++)
        {
            var (ia, ib) = Operands(i, shape, sa, sb);
            double g = dy[i], va = a[(int)ia], vb = b[(int)ib];
            var (ga, gb) = op switch
            {
                BinaryOp.Add => (g, g),                          // ∂(a+b) = (1, 1)
                BinaryOp.Sub => (g, -g),                         // ∂(a−b) = (1, −1)
                BinaryOp.Mul => (g * vb, g * va),                // ∂(ab) = (b, a)
                BinaryOp.Div => (g / vb, -g * va / (vb * vb)),   // ∂(a/b) = (1/b, −a/b²)
                _ => throw new ArgumentOutOfRangeException(nameof(op)),
            };
            if (!da.IsEmpty) da[(int)ia] += ga;
            if (!db.IsEmpty) db[(int)ib] += gb;
        }
    }

    public static void Scale(Span<double> y, ReadOnlySpan<double> x, double alpha) // (n) each
    {
        for (int i = 0; i < y.Length; i++) y[i] = alpha * x[i];
    }

    public static void Axpy(Span<double> y, ReadOnlySpan<double> x, double alpha) // (n) each
    {
        for (int i = 0; i < y.Length; i++) y[i] += alpha * x[i];
    }
}

public sealed partial class ReferenceBackend
{
    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        BinaryChecks.Validate("binary", op, y, a, b, aShape, bShape);
        var result = new double[y.Length];
        BinaryReference.Forward(op, result, D(a), D(b), aShape, bShape);
        Store(y, result);
    }

    public void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        BinaryChecks.ValidateBackward(op, da, db, dy, a, b, aShape, bShape);
        var ga = new double[da?.Length ?? 0];
        var gb = new double[db?.Length ?? 0];
        BinaryReference.Backward(op, ga, gb, D(dy), D(a), D(b), aShape, bShape);
        if (da != null) Store(da, ga);
        if (db != null) Store(db, gb);
    }

    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("scale", y, x, n);
        var result = new double[n];
        BinaryReference.Scale(result, D(x), alpha);
        Store(y, result);
    }

    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("axpy", y, x, n);
        var result = D(y);
        BinaryReference.Axpy(result, D(x), alpha);
        Store(y, result);
    }
}
