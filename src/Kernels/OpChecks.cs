// The buffer checks of the ops without a shape record (see OpShapes.cs for those with one): every backend runs them
// first, so a bad call fails with the same message on each tier.
namespace DreamBooth.Kernels;

public static class UnaryChecks
{
    /// <summary>Argument checks shared by every tier: n positive, buffers f32[n], a defined op.</summary>
    public static void Validate(string op, UnaryOp kind, long n, params (string Name, DeviceBuffer Buffer)[] buffers)
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentException($"{op}: unknown unary op {(int)kind}");
        Check.Positive(op, ("n", n));
        foreach (var (name, buffer) in buffers) Check.Exactly(op, name, buffer, DType.F32, n, $"(n={n})");
    }
}

public static class BinaryChecks
{
    /// <summary>Checks shared by every tier; returns the broadcast (output) shape.</summary>
    public static int[] Validate(string op, BinaryOp kind, DeviceBuffer? y, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape, string yName = "y")
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentException($"{op}: unknown binary op {(int)kind}");
        int[] shape = Broadcasting.Shape(op, aShape, bShape);
        Check.Exactly(op, "a", a, DType.F32, Check.Count(op, "a", aShape), Check.Shape(aShape));
        Check.Exactly(op, "b", b, DType.F32, Check.Count(op, "b", bShape), Check.Shape(bShape));
        if (y != null) Check.Exactly(op, yName, y, DType.F32, Check.Count(op, yName, shape), Check.Shape(shape));
        return shape;
    }

    public static void ValidateBackward(BinaryOp kind, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a,
        DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        const string op = "binary backward";
        Validate(op, kind, dy, a, b, aShape, bShape, "dy");
        if (da != null) Check.Exactly(op, "da", da, DType.F32, a.Length, Check.Shape(aShape));
        if (db != null) Check.Exactly(op, "db", db, DType.F32, b.Length, Check.Shape(bShape));
    }

    public static void ValidateScaled(string op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        Check.Positive(op, ("n", n));
        Check.Exactly(op, "y", y, DType.F32, n, $"(n={n})");
        Check.Exactly(op, "x", x, DType.F32, n, $"(n={n})");
    }
}

public static class GegluChecks
{
    /// <summary>Checks shared by every tier; each buffer is (rows, width·dim): width 2 for x and dx, 1 for y and dy.</summary>
    public static void Validate(string op, int rows, int dim, params (string Name, DeviceBuffer Buffer, int Width)[] buffers)
    {
        Check.Positive(op, ("rows", rows), ("dim", dim));
        foreach (var (name, buffer, width) in buffers)
            Check.Exactly(op, name, buffer, DType.F32, (long)rows * dim * width, $"(rows={rows}, dim={dim})");
    }
}

public static class GroupNormChecks
{
    public static void Validate(string op, int n, int c, int hw, int groups)
    {
        Check.Positive(op, ("N", n), ("C", c), ("HW", hw), ("groups", groups));
        if (c % groups != 0) throw new ArgumentException($"{op}: channels C={c} are not divisible by groups G={groups}");
        if ((long)n * c * hw > int.MaxValue) throw new ArgumentException($"{op}: N·C·HW = {(long)n * c * hw} is above 2^31 − 1");
    }

    public static void ValidateForward(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x,
        DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, float eps)
    {
        const string op = "group norm";
        Validate(op, n, c, hw, groups);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps {eps} must be non-negative");
        string shape = $"(N={n}, C={c}, HW={hw}, G={groups})";
        Check.Exactly(op, "y", y, DType.F32, (long)n * c * hw, shape);
        Check.Exactly(op, "x", x, DType.F32, (long)n * c * hw, shape);
        Check.Exactly(op, "mean", mean, DType.F32, (long)n * groups, shape);
        Check.Exactly(op, "rstd", rstd, DType.F32, (long)n * groups, shape);
        Check.Exactly(op, "gamma", gamma, DType.F32, c, shape);
        Check.Exactly(op, "beta", beta, DType.F32, c, shape);
    }

    public static void ValidateBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy,
        DeviceBuffer x, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups)
    {
        const string op = "group norm backward";
        Validate(op, n, c, hw, groups);
        string shape = $"(N={n}, C={c}, HW={hw}, G={groups})";
        Check.Exactly(op, "dx", dx, DType.F32, (long)n * c * hw, shape);
        Check.Exactly(op, "dy", dy, DType.F32, (long)n * c * hw, shape);
        Check.Exactly(op, "x", x, DType.F32, (long)n * c * hw, shape);
        Check.Exactly(op, "mean", mean, DType.F32, (long)n * groups, shape);
        Check.Exactly(op, "rstd", rstd, DType.F32, (long)n * groups, shape);
        Check.Exactly(op, "gamma", gamma, DType.F32, c, shape);
        Check.Exactly(op, "beta", beta, DType.F32, c, shape);
        Check.Exactly(op, "dgamma", dgamma, DType.F32, c, shape);
        Check.Exactly(op, "dbeta", dbeta, DType.F32, c, shape);
    }
}

public static class LayerNormChecks
{
    public static void Validate(string op, int rows, int dim)
    {
        Check.Positive(op, ("rows", rows), ("dim", dim));
        if ((long)rows * dim > int.MaxValue) throw new ArgumentException($"{op}: rows·dim = {(long)rows * dim} is above 2^31 − 1");
    }

    public static void ValidateForward(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x,
        DeviceBuffer gamma, DeviceBuffer beta, int rows, int dim, float eps)
    {
        const string op = "layer norm";
        Validate(op, rows, dim);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps {eps} must be non-negative");
        string shape = $"(rows={rows}, dim={dim})";
        Check.Exactly(op, "y", y, DType.F32, (long)rows * dim, shape);
        Check.Exactly(op, "x", x, DType.F32, (long)rows * dim, shape);
        Check.Exactly(op, "mean", mean, DType.F32, rows, shape);
        Check.Exactly(op, "rstd", rstd, DType.F32, rows, shape);
        Check.Exactly(op, "gamma", gamma, DType.F32, dim, shape);
        Check.Exactly(op, "beta", beta, DType.F32, dim, shape);
    }

    public static void ValidateBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy,
        DeviceBuffer x, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        const string op = "layer norm backward";
        Validate(op, rows, dim);
        string shape = $"(rows={rows}, dim={dim})";
        Check.Exactly(op, "dx", dx, DType.F32, (long)rows * dim, shape);
        Check.Exactly(op, "dy", dy, DType.F32, (long)rows * dim, shape);
        Check.Exactly(op, "x", x, DType.F32, (long)rows * dim, shape);
        Check.Exactly(op, "mean", mean, DType.F32, rows, shape);
        Check.Exactly(op, "rstd", rstd, DType.F32, rows, shape);
        Check.Exactly(op, "gamma", gamma, DType.F32, dim, shape);
        Check.Exactly(op, "dgamma", dgamma, DType.F32, dim, shape);
        Check.Exactly(op, "dbeta", dbeta, DType.F32, dim, shape);
    }
}

public static class SoftmaxChecks
{
    public static void Validate(string op, DeviceBuffer a, string aName, DeviceBuffer b, string bName, DeviceBuffer c,
        string cName, int rows, int cols)
    {
        Check.Positive(op, ("rows", rows), ("cols", cols));
        if ((long)rows * cols > int.MaxValue) throw new ArgumentException($"{op}: rows·cols = {(long)rows * cols} is above 2^31 − 1");
        string shape = $"(rows={rows}, cols={cols})";
        Check.Exactly(op, aName, a, DType.F32, (long)rows * cols, shape);
        Check.Exactly(op, bName, b, DType.F32, (long)rows * cols, shape);
        Check.Exactly(op, cName, c, DType.F32, (long)rows * cols, shape);
    }
}

public static class ReduceChecks
{
    /// <summary>Checks shared by every tier: same rank, each y dim equal to x's or 1, buffers of the shapes' sizes.</summary>
    public static void Validate(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape)
    {
        const string op = "reduce sum";
        long nx = Check.Count(op, "x", xShape), ny = Check.Count(op, "y", yShape);
        if (xShape.Length != yShape.Length)
            throw new ArgumentException($"{op}: y shape {Check.Shape(yShape)} must have the rank of x shape {Check.Shape(xShape)}");
        for (int d = 0; d < xShape.Length; d++)
            if (yShape[d] != xShape[d] && yShape[d] != 1)
                throw new ArgumentException($"{op}: y shape {Check.Shape(yShape)} dim {d} must be {xShape[d]} or 1 for x shape {Check.Shape(xShape)}");
        Check.Exactly(op, "x", x, DType.F32, nx, Check.Shape(xShape));
        Check.Exactly(op, "y", y, DType.F32, ny, Check.Shape(yShape));
    }

    public static void ValidateSumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        const string op = "sum squares";
        Check.Positive(op, ("n", n));
        Check.Exactly(op, "result", result, DType.F32, 1, "(1)");
        Check.Exactly(op, "x", x, DType.F32, n, $"(n={n})");
    }
}

public static class MseLossChecks
{
    public static void Validate(string op, DeviceBuffer output, string outputName, long outputLength, DeviceBuffer a, DeviceBuffer b, long n)
    {
        Check.Positive(op, ("n", n));
        Check.Exactly(op, outputName, output, DType.F32, outputLength, $"(n={n})");
        Check.Exactly(op, "a", a, DType.F32, n, $"(n={n})");
        Check.Exactly(op, "b", b, DType.F32, n, $"(n={n})");
    }
}

public static class CopyChecks
{
    public static void ValidateFill(DeviceBuffer y)
    {
        ArgumentNullException.ThrowIfNull(y, "fill: y");
        Check.NotCodes("fill", "y", y);
    }

    public static void ValidateCopy(DeviceBuffer dst, DeviceBuffer src)
    {
        ArgumentNullException.ThrowIfNull(src, "copy: src");
        Check.Exactly("copy", "dst", dst, src.DType, src.Length, $"src {src}");
    }

    /// <summary>Checks the whole source footprint up front, so a bad stride fails here and never reads or writes
    /// outside a buffer. Strides must be non-negative, so the largest source index is offset + Σ (shape[d]-1)·strides[d].</summary>
    public static void ValidateStridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset)
    {
        const string op = "strided copy";
        ArgumentNullException.ThrowIfNull(src, $"{op}: src");
        if (shape.Length == 0 || strides.Length != shape.Length)
            throw new ArgumentException($"{op}: shape {Check.Shape(shape)} needs one stride per axis (at least one axis), got {strides.Length}");
        Check.NotCodes(op, "src", src);
        long n = Check.Count(op, "dst", shape);
        Check.Exactly(op, "dst", dst, src.DType, n, $"shape {Check.Shape(shape)}");
        string layout = $"shape {Check.Shape(shape)} strides ({string.Join(", ", strides.ToArray())}) offset {offset}";
        if (offset < 0) throw new ArgumentException($"{op}: negative source offset in {layout}");
        long last = offset;
        for (int d = 0; d < shape.Length; d++)
        {
            if (strides[d] < 0) throw new ArgumentException($"{op}: negative stride in {layout}");
            if (strides[d] > (long.MaxValue - last) / Math.Max(shape[d] - 1, 1))
                throw new ArgumentException($"{op}: source index overflows in {layout}");
            last += (shape[d] - 1) * strides[d];
        }
        if (last >= src.Length)
            throw new ArgumentException($"{op}: {layout} reaches source element {last}, outside src {src}");
        Check.AtLeast(op, "src", src, src.DType, last + 1, layout);
    }
}

public static class ConcatSliceChecks
{
    public static void ValidateConcat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        const string op = "concat";
        Check.Positive(op, ("outer", outer), ("a axis", aAxis), ("b axis", bAxis), ("inner", inner));
        ArgumentNullException.ThrowIfNull(a, $"{op}: a");
        Check.NotCodes(op, "a", a);
        string shape = $"outer={outer} a axis={aAxis} b axis={bAxis} inner={inner}";
        Check.Exactly(op, "a", a, a.DType, (long)outer * aAxis * inner, shape);
        Check.Exactly(op, "b", b, a.DType, (long)outer * bAxis * inner, shape);
        Check.Exactly(op, "y", y, a.DType, (long)outer * (aAxis + bAxis) * inner, shape);
    }

    /// <summary>Slice checks (y, x); its backward checks (dy, dx) under its own names.</summary>
    public static void ValidateSlice(string op, DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner,
        string yName = "y", string xName = "x")
    {
        Check.Positive(op, ("outer", outer), ("x axis", xAxis), ("y axis", yAxis), ("inner", inner));
        if (start < 0 || start > xAxis - yAxis)
            throw new ArgumentException($"{op}: slice [{start}, {(long)start + yAxis}) is outside the axis of length {xAxis}");
        ArgumentNullException.ThrowIfNull(x, $"{op}: {xName}");
        Check.NotCodes(op, xName, x);
        string shape = $"outer={outer} x axis={xAxis} start={start} y axis={yAxis} inner={inner}";
        Check.Exactly(op, xName, x, x.DType, (long)outer * xAxis * inner, shape);
        Check.Exactly(op, yName, y, x.DType, (long)outer * yAxis * inner, shape);
    }
}

public static class CastChecks
{
    public static void Validate(DeviceBuffer dst, DeviceBuffer src)
    {
        const string op = "cast";
        ArgumentNullException.ThrowIfNull(src, $"{op}: src");
        ArgumentNullException.ThrowIfNull(dst, $"{op}: dst");
        foreach (var (name, buffer) in new[] { ("src", src), ("dst", dst) })
            if (buffer.DType is not (DType.F32 or DType.F16 or DType.BF16))
                throw new ArgumentException($"{op}: {name} is {buffer}; only f32, f16 and bf16 convert");
        Check.Exactly(op, "dst", dst, dst.DType, src.Length, $"src {src}");
    }
}

public static class UpsampleChecks
{
    public static void Validate(string op, DeviceBuffer big, string bigName, DeviceBuffer small, string smallName, int planes, int h, int w)
    {
        Check.Positive(op, ("planes", planes), ("H", h), ("W", w));
        string shape = $"(planes={planes}, H={h}, W={w})";
        Check.Exactly(op, bigName, big, DType.F32, 4L * planes * h * w, shape);
        Check.Exactly(op, smallName, small, DType.F32, (long)planes * h * w, shape);
    }
}

public static class EmbeddingChecks
{
    /// <summary>Shapes and dtypes; returns the vocabulary size (table rows).</summary>
    public static int Validate(string op, string yName, DeviceBuffer y, string tableName, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        Check.Positive(op, ("count", count), ("dim", dim));
        ArgumentNullException.ThrowIfNull(table, $"{op}: {tableName}");
        if (table.DType != DType.F32 || table.Length == 0 || table.Length % dim != 0)
            throw new ArgumentException($"{op}: {tableName} is {table}, expected f32 (vocab, dim={dim})");
        string shape = $"count={count} dim={dim}";
        Check.Exactly(op, "ids", ids, DType.I32, count, shape);
        Check.Exactly(op, yName, y, DType.F32, (long)count * dim, shape);
        return checked((int)(table.Length / dim));
    }

    /// <summary>Every id must name a table row; checked before anything is written.</summary>
    public static void CheckIds(string op, ReadOnlySpan<int> ids, int vocab)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentException($"{op}: ids[{i}] = {ids[i]} is outside the vocabulary [0, {vocab})");
    }
}

public static class PhiloxChecks
{
    public static void Validate(string op, DeviceBuffer y)
    {
        ArgumentNullException.ThrowIfNull(y, $"{op}: y");
        if (y.DType != DType.F32) throw new ArgumentException($"{op}: y is {y}, expected f32");
    }
}
