// Broadcasting binary ops (add, sub, mul, div) and their backward on Vector512, plus Scale (y = αx) and Axpy (y += αx).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

interface IBinaryKernel
{
    static abstract Vector512<float> Apply(Vector512<float> a, Vector512<float> b);
    static abstract float Apply(float a, float b);
}

struct AddKernel : IBinaryKernel
{
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a + b;
    public static float Apply(float a, float b) => a + b;
}

struct SubKernel : IBinaryKernel
{
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a - b;
    public static float Apply(float a, float b) => a - b;
}

struct MulKernel : IBinaryKernel
{
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a * b;
    public static float Apply(float a, float b) => a * b;
}

struct DivKernel : IBinaryKernel
{
    public static Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a / b;
    public static float Apply(float a, float b) => a / b;
}

/// <summary>A broadcast reduced to its essentials: the output's dims with size-1 dims dropped and neighbours merged when
/// both operands advance the same way across them (both contiguous, or the same one broadcast). Dims are stored
/// innermost first, so dim 0 is the contiguous run the SIMD loops see; a stride of 0 marks a broadcast operand.
/// Bias over (N, C, HW) as (1, C, 1) becomes three dims, a same-shape op one dim.</summary>
sealed class BroadcastPlan
{
    public int Rank;
    public readonly long[] Size, StrideA, StrideB;

    BroadcastPlan(int capacity) => (Size, StrideA, StrideB) = (new long[capacity], new long[capacity], new long[capacity]);

    public static BroadcastPlan Create(ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        int rank = Math.Max(aShape.Length, bShape.Length);
        var plan = new BroadcastPlan(Math.Max(rank, 1));
        long strideA = 1, strideB = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            int da = Broadcasting.Dim(aShape, d, rank), db = Broadcasting.Dim(bShape, d, rank);
            long size = Math.Max(da, db);
            if (size == 1) continue;
            long sa = da == 1 ? 0 : strideA, sb = db == 1 ? 0 : strideB;
            int last = plan.Rank - 1;
            if (last >= 0 && (sa == 0) == (plan.StrideA[last] == 0) && (sb == 0) == (plan.StrideB[last] == 0))
                plan.Size[last] *= size;                         // contiguous with the inner dim for both operands: merge
            else
            {
                plan.Size[plan.Rank] = size;
                plan.StrideA[plan.Rank] = sa;
                plan.StrideB[plan.Rank] = sb;
                plan.Rank++;
            }
            strideA *= da;
            strideB *= db;
        }
        if (plan.Rank == 0) { plan.Rank = 1; plan.Size[0] = 1; plan.StrideA[0] = 1; plan.StrideB[0] = 1; }
        return plan;
    }

    /// <summary>Operand offsets of outer row r (the output row r·Size[0]).</summary>
    public (long A, long B) RowOffsets(long r)
    {
        long oa = 0, ob = 0;
        for (int d = 1; d < Rank; d++)
        {
            long coord = r % Size[d];
            r /= Size[d];
            oa += coord * StrideA[d];
            ob += coord * StrideB[d];
        }
        return (oa, ob);
    }
}

public sealed unsafe partial class CpuBackend
{
    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        BinaryChecks.Validate("binary", op, y, a, b, aShape, bShape);
        Broadcast(op, F(y), F(a), F(b), BroadcastPlan.Create(aShape, bShape));
    }

    static void Broadcast(BinaryOp op, float* y, float* a, float* b, BroadcastPlan plan)
    {
        switch (op)
        {
            case BinaryOp.Add: Broadcast<AddKernel>(y, a, b, plan); break;
            case BinaryOp.Sub: Broadcast<SubKernel>(y, a, b, plan); break;
            case BinaryOp.Mul: Broadcast<MulKernel>(y, a, b, plan); break;
            case BinaryOp.Div: Broadcast<DivKernel>(y, a, b, plan); break;
        }
    }

    /// <summary>Runs the plan's contiguous inner run for every outer row. Work items are a block of rows (short runs)
    /// or a Grain-sized piece of one row (long runs), so both shapes spread over the cores.</summary>
    static void Broadcast<TOp>(float* y, float* a, float* b, BroadcastPlan plan) where TOp : struct, IBinaryKernel
    {
        long inner = plan.Size[0], rows = 1;
        for (int d = 1; d < plan.Rank; d++) rows *= plan.Size[d];
        long total = inner * rows;
        if (inner >= Chunks.Grain)
        {
            long pieces = (inner + Chunks.Grain - 1) / Chunks.Grain;
            Chunks.Items(rows * pieces, total, item =>
            {
                long r = item / pieces, start = item % pieces * Chunks.Grain;
                var (oa, ob) = plan.RowOffsets(r);
                Run<TOp>(plan, y + r * inner + start, a + oa + start * plan.StrideA[0], b + ob + start * plan.StrideB[0],
                    Math.Min(Chunks.Grain, inner - start));
            });
        }
        else
        {
            long rowsPerItem = Math.Max(1, Chunks.Grain / inner);
            Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, total, item =>
            {
                long end = Math.Min(rows, (item + 1) * rowsPerItem);
                for (long r = item * rowsPerItem; r < end; r++)
                {
                    var (oa, ob) = plan.RowOffsets(r);
                    Run<TOp>(plan, y + r * inner, a + oa, b + ob, inner);
                }
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Run<TOp>(BroadcastPlan plan, float* y, float* a, float* b, long n) where TOp : struct, IBinaryKernel
    {
        if (plan.StrideA[0] == 0) ScalarVector<TOp>(y, *a, b, n);
        else if (plan.StrideB[0] == 0) VectorScalar<TOp>(y, a, *b, n);
        else VectorVector<TOp>(y, a, b, n);
    }

    static void VectorVector<TOp>(float* y, float* a, float* b, long n) where TOp : struct, IBinaryKernel
    {
        long i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var r0 = TOp.Apply(Vector512.Load(a + i), Vector512.Load(b + i));
            var r1 = TOp.Apply(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16));
            Vector512.Store(r0, y + i);
            Vector512.Store(r1, y + i + 16);
        }
        for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(a + i), Vector512.Load(b + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(a[i], b[i]);
    }

    static void VectorScalar<TOp>(float* y, float* a, float b, long n) where TOp : struct, IBinaryKernel
    {
        var vb = Vector512.Create(b);
        long i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var r0 = TOp.Apply(Vector512.Load(a + i), vb);
            var r1 = TOp.Apply(Vector512.Load(a + i + 16), vb);
            Vector512.Store(r0, y + i);
            Vector512.Store(r1, y + i + 16);
        }
        for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(a + i), vb), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(a[i], b);
    }

    static void ScalarVector<TOp>(float* y, float a, float* b, long n) where TOp : struct, IBinaryKernel
    {
        var va = Vector512.Create(a);
        long i = 0;
        for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(va, Vector512.Load(b + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(a, b[i]);
    }

    /// <summary>Each gradient is an elementwise term over the broadcast shape, summed over the operand's broadcast dims:
    /// add (dy, dy), sub (dy, −dy), mul (dy·b, dy·a), div (dy/b, −(dy/b)·a/b). A term is written straight into the
    /// gradient when the operand has the full shape, else into scratch that ReduceSum folds. db is written before da,
    /// so da may share dy's buffer.</summary>
    public void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        BinaryChecks.ValidateBackward(op, da, db, dy, a, b, aShape, bShape);
        int[] shape = Broadcasting.Shape("binary backward", aShape, bShape);
        long total = dy.Length;
        float* pdy = F(dy), pa = F(a), pb = F(b);
        if (db != null)
        {
            float* dst = F(db), term = pdy;
            float sign = op is BinaryOp.Add or BinaryOp.Mul ? 1 : -1;
            if (op is BinaryOp.Mul or BinaryOp.Div)
            {
                term = db.Length == total ? dst : Scratch.Current.Get(Scratch.BroadcastTerm, total);
                if (op == BinaryOp.Mul) Broadcast(BinaryOp.Mul, term, pdy, pa, BroadcastPlan.Create(shape, aShape));
                else
                {
                    Broadcast(BinaryOp.Div, term, pdy, pb, BroadcastPlan.Create(shape, bShape));
                    Broadcast(BinaryOp.Mul, term, term, pa, BroadcastPlan.Create(shape, aShape));
                    Broadcast(BinaryOp.Div, term, term, pb, BroadcastPlan.Create(shape, bShape));
                }
            }
            FoldInto(dst, term, shape, bShape, sign);
        }
        if (da != null)
        {
            float* dst = F(da), term = pdy;
            if (op is BinaryOp.Mul or BinaryOp.Div)
            {
                term = da.Length == total ? dst : Scratch.Current.Get(Scratch.BroadcastTerm, total);
                Broadcast(op, term, pdy, pb, BroadcastPlan.Create(shape, bShape));
            }
            FoldInto(dst, term, shape, aShape, 1);
        }
    }

    /// <summary>dst (operand shape) = sign · term (broadcast shape) summed over the operand's broadcast dims.</summary>
    static void FoldInto(float* dst, float* term, int[] shape, ReadOnlySpan<int> operandShape, float sign)
    {
        Span<int> padded = stackalloc int[shape.Length];
        for (int d = 0; d < shape.Length; d++) padded[d] = Broadcasting.Dim(operandShape, d, shape.Length);
        if (dst == term && sign == 1) return;
        Reduce(dst, term, shape, padded, sign);
    }

    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("scale", y, x, n);
        float* py = F(y), px = F(x);
        Chunks.For(n, (start, end) => ScaleRun(py + start, px + start, alpha, end - start));
    }

    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("axpy", y, x, n);
        float* py = F(y), px = F(x);
        Chunks.For(n, (start, end) =>
        {
            float* yy = py + start, xx = px + start;
            long count = end - start, i = 0;
            var va = Vector512.Create(alpha);
            for (; i + 16 <= count; i += 16)
                Vector512.Store(Vector512.FusedMultiplyAdd(va, Vector512.Load(xx + i), Vector512.Load(yy + i)), yy + i);
            for (; i < count; i++) yy[i] += alpha * xx[i];
        });
    }

    /// <summary>y = α·x over n contiguous elements (y may be x).</summary>
    static void ScaleRun(float* y, float* x, float alpha, long n)
    {
        var va = Vector512.Create(alpha);
        long i = 0;
        for (; i + 16 <= n; i += 16) Vector512.Store(va * Vector512.Load(x + i), y + i);
        for (; i < n; i++) y[i] = alpha * x[i];
    }
}
