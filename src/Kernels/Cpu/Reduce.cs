// Reductions on Vector512: ReduceSum over any axes and SumSquares, summed via double over fixed splits (deterministic).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

/// <summary>The per-element term a sum adds up: x, x², or (a − b)².</summary>
unsafe interface ISumTerm
{
    static abstract Vector512<float> At(float* a, float* b);
    static abstract Vector512<float> Tail(float* a, float* b, long count);   // zero padding adds nothing
}

unsafe struct PlainTerm : ISumTerm
{
    public static Vector512<float> At(float* a, float* b) => Vector512.Load(a);
    public static Vector512<float> Tail(float* a, float* b, long count) => Chunks.LoadTail<Vector512<float>>(a, count);
}

unsafe struct SquareTerm : ISumTerm
{
    public static Vector512<float> At(float* a, float* b) { var v = Vector512.Load(a); return v * v; }
    public static Vector512<float> Tail(float* a, float* b, long count) { var v = Chunks.LoadTail<Vector512<float>>(a, count); return v * v; }
}

unsafe struct SquaredDifferenceTerm : ISumTerm
{
    public static Vector512<float> At(float* a, float* b) { var d = Vector512.Load(a) - Vector512.Load(b); return d * d; }
    public static Vector512<float> Tail(float* a, float* b, long count)
    {
        var d = Chunks.LoadTail<Vector512<float>>(a, count) - Chunks.LoadTail<Vector512<float>>(b, count);
        return d * d;
    }
}

public sealed unsafe partial class CpuBackend
{
    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        ReduceChecks.Validate(y, x, xShape, yShape);
        Reduce(F(y), F(x), xShape, yShape, scale);
    }

    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        ReduceChecks.ValidateSumSquares(result, x, n);
        *F(result) = (float)Total<SquareTerm>(F(x), null, n);
    }

    /// <summary>y = scale·Σx over the dims where yShape is 1. The dims are first simplified (size-1 dims dropped,
    /// neighbours of the same kind merged) into alternating kept/summed runs. A trailing summed run is a row sum
    /// over contiguous memory; what remains ends in a kept run, a column sum of whole rows. (N, C, HW) → (1, C, 1)
    /// is row sums over HW into (N, C) scratch, then column sums over N.</summary>
    static void Reduce(float* y, float* x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        Span<long> size = stackalloc long[xShape.Length];
        Span<bool> summed = stackalloc bool[xShape.Length];
        int rank = 0;
        long total = 1;
        bool anySummed = false;
        for (int d = 0; d < xShape.Length; d++)
        {
            total *= xShape[d];
            if (xShape[d] == 1) continue;
            bool s = yShape[d] == 1;
            anySummed |= s;
            if (rank > 0 && summed[rank - 1] == s) size[rank - 1] *= xShape[d];
            else { size[rank] = xShape[d]; summed[rank] = s; rank++; }
        }
        if (!anySummed)
        {
            Chunks.For(total, (start, end) => ScaleRun(y + start, x + start, scale, end - start));
            return;
        }
        if (!summed[rank - 1])
        {
            ColumnSums(y, x, size[..rank], summed[..rank], scale);
            return;
        }
        long length = size[rank - 1], rows = total / length;
        if (rank == 1 || (rank == 2 && !summed[0]))
        {
            RowSums(y, x, rows, length, scale);
            return;
        }
        float* sums = (float*)NativeMemory.AlignedAlloc((nuint)(rows * sizeof(float)), 64);
        try
        {
            RowSums(sums, x, rows, length, 1);
            ColumnSums(y, sums, size[..(rank - 1)], summed[..(rank - 1)], scale);
        }
        finally
        {
            NativeMemory.AlignedFree(sums);
        }
    }

    /// <summary>dst[r] = scale·Σⱼ x[r, j] for x (rows, length).</summary>
    static void RowSums(float* dst, float* x, long rows, long length, float scale)
    {
        if (length >= Chunks.Grain)
        {
            for (long r = 0; r < rows; r++) dst[r] = (float)(scale * Total<PlainTerm>(x + r * length, null, length));
            return;
        }
        long rowsPerItem = Math.Max(1, Chunks.Grain / length);
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, rows * length, item =>
        {
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long r = item * rowsPerItem; r < end; r++) dst[r] = (float)(scale * Sum<PlainTerm>(x + r * length, null, length));
        });
    }

    /// <summary>x is (d₀, d₁, ..., L) with the last dim kept and the others kept or summed as flagged; y (the kept dims, L).
    /// Each task owns one y row and a block of its columns and adds the x rows that feed it in a fixed order, in double.</summary>
    static void ColumnSums(float* y, float* x, ReadOnlySpan<long> sizeSpan, ReadOnlySpan<bool> summedSpan, float scale)
    {
        int rank = sizeSpan.Length;
        long length = sizeSpan[rank - 1];
        var size = sizeSpan[..(rank - 1)].ToArray();
        var summed = summedSpan[..(rank - 1)].ToArray();
        var rowStride = new long[rank - 1];                  // in rows of x
        long outRows = 1, inRows = 1, stride = 1;
        for (int d = rank - 2; d >= 0; d--)
        {
            rowStride[d] = stride;
            stride *= size[d];
            if (summed[d]) inRows *= size[d]; else outRows *= size[d];
        }
        long block = Math.Clamp((length + 3) / 4 + 15 & ~15L, 16, 1024);   // ≥ 4 column blocks when rows are long
        long blocks = (length + block - 1) / block;
        Chunks.Items(outRows * blocks, outRows * inRows * length, item =>
        {
            long q = item / blocks, c0 = item % blocks * block, width = Math.Min(block, length - c0);
            // Offset (in x rows) of y row q's first x row, from q's coordinates along the kept dims.
            long first = 0, rest = q;
            for (int d = rank - 2; d >= 0; d--)
                if (!summed[d]) { first += rest % size[d] * rowStride[d]; rest /= size[d]; }
            Span<long> coord = stackalloc long[rank - 1];
            double* acc = stackalloc double[(int)block];
            for (long j = 0; j < width; j++) acc[j] = 0;
            long row = first;
            for (long i = 0; i < inRows; i++)
            {
                AddWidened(acc, x + row * length + c0, width);
                // Odometer over the summed dims, innermost fastest.
                for (int d = rank - 2; d >= 0; d--)
                {
                    if (!summed[d]) continue;
                    row += rowStride[d];
                    if (++coord[d] < size[d]) break;
                    row -= coord[d] * rowStride[d];
                    coord[d] = 0;
                }
            }
            float* dst = y + q * length + c0;
            for (long j = 0; j < width; j++) dst[j] = (float)(scale * acc[j]);
        });
    }

    /// <summary>acc[j] += x[j] in double, j &lt; n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddWidened(double* acc, float* x, long n)
    {
        long j = 0;
        for (; j + 16 <= n; j += 16)
        {
            var v = Vector512.Load(x + j);
            Vector512.Store(Vector512.Load(acc + j) + Vector512.WidenLower(v), acc + j);
            Vector512.Store(Vector512.Load(acc + j + 8) + Vector512.WidenUpper(v), acc + j + 8);
        }
        for (; j < n; j++) acc[j] += x[j];
    }

    /// <summary>Σ term over n elements, split into Grain-sized pieces summed in parallel and combined in order.</summary>
    static double Total<TTerm>(float* a, float* b, long n) where TTerm : struct, ISumTerm
    {
        if (n <= Chunks.Grain) return Sum<TTerm>(a, b, n);
        long pieces = (n + Chunks.Grain - 1) / Chunks.Grain;
        var partial = new double[pieces];
        Cores.For(0L, pieces, p =>
        {
            long start = p * Chunks.Grain;
            partial[p] = Sum<TTerm>(a + start, b == null ? null : b + start, Math.Min(Chunks.Grain, n - start));
        });
        double total = 0;
        foreach (double s in partial) total += s;
        return total;
    }

    /// <summary>Σ term: four f32 accumulators over each 256 elements (4 terms per lane), then widened into double.</summary>
    static double Sum<TTerm>(float* a, float* b, long n) where TTerm : struct, ISumTerm
    {
        var lo = Vector512<double>.Zero;
        var hi = Vector512<double>.Zero;
        long i = 0;
        for (; i + 256 <= n; i += 256)
        {
            var s0 = Vector512<float>.Zero;
            var s1 = Vector512<float>.Zero;
            var s2 = Vector512<float>.Zero;
            var s3 = Vector512<float>.Zero;
            for (long j = i; j < i + 256; j += 64)
            {
                s0 += TTerm.At(a + j, b + j);
                s1 += TTerm.At(a + j + 16, b + j + 16);
                s2 += TTerm.At(a + j + 32, b + j + 32);
                s3 += TTerm.At(a + j + 48, b + j + 48);
            }
            var s = s0 + s1 + (s2 + s3);
            lo += Vector512.WidenLower(s);
            hi += Vector512.WidenUpper(s);
        }
        var t = Vector512<float>.Zero;
        for (; i + 16 <= n; i += 16) t += TTerm.At(a + i, b + i);
        if (i < n) t += TTerm.Tail(a + i, b + i, n - i);
        lo += Vector512.WidenLower(t);
        hi += Vector512.WidenUpper(t);
        return Vector512.Sum(lo + hi);
    }
}
