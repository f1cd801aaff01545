// An IBackend that times every op of the backend it wraps, by phase, op and shape: what `dreambooth profile` reports.
using System.Diagnostics;

namespace DreamBooth.Kernels;

/// <summary>Totals of one (phase, op, shape) row: calls, wall time, and the work done (FLOPs of the direct algorithm,
/// bytes of every buffer the op reads or writes, each counted once per argument).</summary>
public sealed record OpTotals(long Calls, double Milliseconds, double Flops, double Bytes);

/// <summary>
/// Wraps a backend and records each op's time. The model is built on the wrapper, so every buffer it allocates is a
/// thin handle on the inner backend's buffer, and every op passes the inner buffers straight through: results are
/// bit-identical to the unwrapped backend. Each recorded op is bracketed by Synchronize, so on an asynchronous backend
/// (CUDA) the time is the op's own, not its launch's; that serialises the stream, so a profiled step is slower than a
/// plain one on a GPU. On the CPU tiers Synchronize is free. Set <see cref="Phase"/> before each part of a step
/// (forward, backward, optimizer) and <see cref="Recording"/> to false for warm-up steps.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : IBackend
{
    readonly Dictionary<(string Phase, string Op, string Shape), OpTotals> _totals = new();

    public IBackend Inner { get; } = inner;
    public string Name => Inner.Name;
    public MemoryStats Memory => Inner.Memory;

    /// <summary>The label of the ops recorded from now on.</summary>
    public string Phase { get; set; } = "forward";

    public bool Recording { get; set; } = true;

    public IReadOnlyDictionary<(string Phase, string Op, string Shape), OpTotals> Totals => _totals;

    public void Reset() => _totals.Clear();

    public void Dispose() => Inner.Dispose();

    sealed class Handle(ProfilingBackend owner, DeviceBuffer inner) : DeviceBuffer(owner, inner.DType, inner.Length)
    {
        public DeviceBuffer Inner { get; } = inner;
        public override bool IsDisposed => Inner.IsDisposed;
        public override DeviceBuffer Slice(long offset, long length) => new Handle((ProfilingBackend)Backend, Inner.Slice(offset, length));
        public override void Dispose() => Inner.Dispose();
    }

    DeviceBuffer U(DeviceBuffer b) => b is Handle h && ReferenceEquals(h.Backend, this)
        ? h.Inner
        : throw new ArgumentException($"profiling backend: a {b} buffer of another backend ({b.Backend.Name}) was passed in");

    DeviceBuffer? U0(DeviceBuffer? b) => b is null ? null : U(b);

    static double B(params DeviceBuffer?[] buffers) => buffers.Sum(b => b is null ? 0.0 : b.Bytes);

    static string S(ReadOnlySpan<int> shape) => "[" + string.Join(",", shape.ToArray()) + "]";

    long Start()
    {
        if (!Recording) return 0;
        Inner.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    void Stop(long start, string op, string shape, double flops, double bytes)
    {
        if (!Recording) return;
        Inner.Synchronize();
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var key = (Phase, op, shape);
        var t = _totals.GetValueOrDefault(key, new OpTotals(0, 0, 0, 0));
        _totals[key] = new OpTotals(t.Calls + 1, t.Milliseconds + ms, t.Flops + flops, t.Bytes + bytes);
    }

    // ---- memory (not timed: allocation is reported as peak memory instead) ----
    public DeviceBuffer Allocate(DType dtype, long length) => new Handle(this, Inner.Allocate(dtype, length));
    public DeviceBuffer AllocateUninitialized(DType dtype, long length) => new Handle(this, Inner.AllocateUninitialized(dtype, length));
    public void Upload<T>(DeviceBuffer dst, ReadOnlySpan<T> src) where T : unmanaged => Inner.Upload(U(dst), src);
    public void Download<T>(Span<T> dst, DeviceBuffer src) where T : unmanaged => Inner.Download(dst, U(src));
    public void Synchronize() => Inner.Synchronize();

    // ---- matrix products and convolution ----
    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s)
    {
        long t = Start();
        Inner.Gemm(U(c), U(a), U(b), U0(bias), s);
        Stop(t, "gemm", $"{(s.Batch > 1 ? $"{s.Batch}×" : "")}[{s.M}x{s.K}]{(s.TransA ? "ᵀ" : "")}·[{s.K}x{s.N}]{(s.TransB ? "ᵀ" : "")}{(bias is null ? "" : "+bias")} {a.DType.Name()}",
            s.Flops, B(c, a, b, bias));
    }

    static string Conv(in ConvShape s) => $"x[{s.N},{s.InC},{s.H},{s.W}] w[{s.OutC},{s.InC},{s.KH},{s.KW}] s{s.Stride} p{s.Pad}";
    static double ConvFlops(in ConvShape s) => 2.0 * s.OutputLength * s.InC * s.KH * s.KW;

    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s)
    {
        long t = Start();
        Inner.Conv2d(U(y), U(x), U(w), U0(bias), s);
        Stop(t, "conv2d", Conv(s), ConvFlops(s), B(y, x, w, bias));
    }

    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s)
    {
        long t = Start();
        Inner.Conv2dGradInput(U(dx), U(dy), U(w), s);
        Stop(t, "conv2d grad input", Conv(s), ConvFlops(s), B(dx, dy, w));
    }

    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s)
    {
        long t = Start();
        Inner.Conv2dGradWeight(U(dw), U0(dbias), U(dy), U(x), s);
        Stop(t, "conv2d grad weight", Conv(s), ConvFlops(s), B(dw, dbias, dy, x));
    }

    // ---- normalisation, softmax, attention ----
    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int n, int c, int hw, int groups, float eps, bool silu)
    {
        long t = Start();
        Inner.GroupNorm(U(y), U(mean), U(rstd), U(x), U(gamma), U(beta), n, c, hw, groups, eps, silu);
        Stop(t, silu ? "group norm + silu" : "group norm", $"[{n},{c},{hw}] g{groups}", 0, B(y, mean, rstd, x, gamma, beta));
    }

    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu)
    {
        long t = Start();
        Inner.GroupNormBackward(U(dx), U(dgamma), U(dbeta), U(dy), U(x), U(mean), U(rstd), U(gamma), U(beta), n, c, hw, groups, silu);
        Stop(t, silu ? "group norm + silu backward" : "group norm backward", $"[{n},{c},{hw}] g{groups}", 0,
            B(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta));
    }

    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, int rows, int dim, float eps)
    {
        long t = Start();
        Inner.LayerNorm(U(y), U(mean), U(rstd), U(x), U(gamma), U(beta), rows, dim, eps);
        Stop(t, "layer norm", $"[{rows},{dim}]", 0, B(y, mean, rstd, x, gamma, beta));
    }

    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        long t = Start();
        Inner.LayerNormBackward(U(dx), U(dgamma), U(dbeta), U(dy), U(x), U(mean), U(rstd), U(gamma), rows, dim);
        Stop(t, "layer norm backward", $"[{rows},{dim}]", 0, B(dx, dgamma, dbeta, dy, x, mean, rstd, gamma));
    }

    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols)
    {
        long t = Start();
        Inner.Softmax(U(y), U(x), rows, cols);
        Stop(t, "softmax", $"[{rows},{cols}]", 0, B(y, x));
    }

    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols)
    {
        long t = Start();
        Inner.SoftmaxBackward(U(dx), U(dy), U(y), rows, cols);
        Stop(t, "softmax backward", $"[{rows},{cols}]", 0, B(dx, dy, y));
    }

    static string Attn(in AttentionShape s) => $"q[{s.Batch},{s.Heads},{s.QueryLen},{s.HeadDim}] kv[{s.KeyLen}]{(s.Causal ? " causal" : "")}";

    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s)
    {
        long t = Start();
        Inner.Attention(U(o), U(lse), U(q), U(k), U(v), s);
        Stop(t, "attention", Attn(s), s.Flops, B(o, lse, q, k, v));
    }

    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s)
    {
        long t = Start();
        Inner.AttentionBackward(U(dq), U(dk), U(dv), U(dout), U(q), U(k), U(v), U(o), U(lse), s);
        Stop(t, "attention backward", Attn(s), 2 * s.Flops, B(dq, dk, dv, dout, q, k, v, o, lse));   // dV, dP, dQ, dK: 2× the forward's products
    }

    // ---- elementwise and broadcasting ----
    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n)
    {
        long t = Start();
        Inner.Unary(op, U(y), U(x), n);
        Stop(t, op.ToString().ToLowerInvariant(), $"[{n}]", 0, B(y, x));
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n)
    {
        long t = Start();
        Inner.UnaryBackward(op, U(dx), U(dy), U(x), n);
        Stop(t, op.ToString().ToLowerInvariant() + " backward", $"[{n}]", 0, B(dx, dy, x));
    }

    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        long t = Start();
        Inner.Binary(op, U(y), U(a), U(b), aShape, bShape);
        Stop(t, op.ToString().ToLowerInvariant(), S(aShape) + " " + S(bShape), 0, B(y, a, b));
    }

    public void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        long t = Start();
        Inner.BinaryBackward(op, U0(da), U0(db), U(dy), U(a), U(b), aShape, bShape);
        Stop(t, op.ToString().ToLowerInvariant() + " backward", S(aShape) + " " + S(bShape), 0, B(da, db, dy, a, b));
    }

    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        long t = Start();
        Inner.Scale(U(y), U(x), alpha, n);
        Stop(t, "scale", $"[{n}]", n, B(y, x));
    }

    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        long t = Start();
        Inner.Axpy(U(y), U(x), alpha, n);
        Stop(t, "axpy", $"[{n}]", 2.0 * n, 2 * B(y) + B(x));
    }

    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        long t = Start();
        Inner.Geglu(U(y), U(x), rows, dim);
        Stop(t, "geglu", $"[{rows},{dim}]", 0, B(y, x));
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        long t = Start();
        Inner.GegluBackward(U(dx), U(dy), U(x), rows, dim);
        Stop(t, "geglu backward", $"[{rows},{dim}]", 0, B(dx, dy, x));
    }

    // ---- data movement ----
    public void Fill(DeviceBuffer y, float value)
    {
        long t = Start();
        Inner.Fill(U(y), value);
        Stop(t, "fill", $"{y}", 0, B(y));
    }

    public void Copy(DeviceBuffer dst, DeviceBuffer src)
    {
        long t = Start();
        Inner.Copy(U(dst), U(src));
        Stop(t, "copy", $"{src}", 0, B(dst, src));
    }

    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset)
    {
        long t = Start();
        Inner.StridedCopy(U(dst), U(src), shape, srcStrides, srcOffset);
        Stop(t, "strided copy", S(shape) + " strides [" + string.Join(",", srcStrides.ToArray()) + "]", 0, 2 * B(dst));
    }

    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        long t = Start();
        Inner.Concat(U(y), U(a), U(b), outer, aAxis, bAxis, inner);
        Stop(t, "concat", $"[{outer},{aAxis}+{bAxis},{inner}]", 0, B(y, a, b));
    }

    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner)
    {
        long t = Start();
        Inner.Slice(U(y), U(x), outer, xAxis, start, yAxis, inner);
        Stop(t, "slice", $"[{outer},{xAxis},{inner}] → {yAxis}", 0, 2 * B(y));
    }

    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner)
    {
        long t = Start();
        Inner.SliceBackward(U(dx), U(dy), outer, xAxis, start, yAxis, inner);
        Stop(t, "slice backward", $"[{outer},{xAxis},{inner}] ← {yAxis}", 0, B(dx, dy));
    }

    public void Cast(DeviceBuffer dst, DeviceBuffer src)
    {
        long t = Start();
        Inner.Cast(U(dst), U(src));
        Stop(t, "cast", $"{src} → {dst.DType.Name()}", 0, B(dst, src));
    }

    // ---- reductions and losses ----
    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale)
    {
        long t = Start();
        Inner.ReduceSum(U(y), U(x), xShape, yShape, scale);
        Stop(t, "reduce sum", S(xShape) + " → " + S(yShape), x.Length, B(y, x));
    }

    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        long t = Start();
        Inner.SumSquares(U(result), U(x), n);
        Stop(t, "sum of squares", $"[{n}]", 2.0 * n, B(result, x));
    }

    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n)
    {
        long t = Start();
        Inner.MseLoss(U(loss), U(a), U(b), n);
        Stop(t, "mse loss", $"[{n}]", 3.0 * n, B(loss, a, b));
    }

    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n)
    {
        long t = Start();
        Inner.MseLossBackward(U(da), U(a), U(b), gradLoss, n);
        Stop(t, "mse loss backward", $"[{n}]", 2.0 * n, B(da, a, b));
    }

    // ---- resampling and lookup ----
    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w)
    {
        long t = Start();
        Inner.UpsampleNearest2x(U(y), U(x), planes, h, w);
        Stop(t, "upsample nearest 2×", $"[{planes},{h},{w}]", 0, B(y, x));
    }

    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w)
    {
        long t = Start();
        Inner.UpsampleNearest2xBackward(U(dx), U(dy), planes, h, w);
        Stop(t, "upsample nearest 2× backward", $"[{planes},{h},{w}]", 0, B(dx, dy));
    }

    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim)
    {
        long t = Start();
        Inner.Embedding(U(y), U(table), U(ids), count, dim);
        Stop(t, "embedding", $"[{count}] of {table.Length / Math.Max(dim, 1)}×{dim}", 0, 2 * B(y) + B(ids));
    }

    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim)
    {
        long t = Start();
        Inner.EmbeddingBackward(U(dtable), U(dy), U(ids), count, dim);
        Stop(t, "embedding backward", $"[{count}] of {dtable.Length / Math.Max(dim, 1)}×{dim}", count * (double)dim, 3 * B(dy) + B(ids));
    }

    // ---- optimizer and random numbers ----
    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        long t = Start();
        Inner.AdamW(U(param), U(grad), U(m), U(v), s, n);
        Stop(t, "adamw", $"[{n}]", 0, 2 * B(param, m, v) + B(grad));   // p, m, v read and written; g read
    }

    public void AdamW8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax,
        in AdamWStep s, long n)
    {
        long t = Start();
        Inner.AdamW8bit(U(param), U(grad), U(m), U(mMax), U(v), U(vMax), s, n);
        Stop(t, "adamw 8-bit", $"[{n}]", 0, 2 * B(param, m, mMax, v, vMax) + B(grad));   // codes, absmax and p read and written
    }

    public void RandomUniform(DeviceBuffer y, ulong seed, ulong offset)
    {
        long t = Start();
        Inner.RandomUniform(U(y), seed, offset);
        Stop(t, "random uniform", $"{y}", 0, B(y));
    }

    public void RandomNormal(DeviceBuffer y, ulong seed, ulong offset)
    {
        long t = Start();
        Inner.RandomNormal(U(y), seed, offset);
        Stop(t, "random normal", $"{y}", 0, B(y));
    }
}
