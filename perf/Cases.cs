// The benchmarked work, each built on any backend from seeded inputs so the cpu result can be checked against the reference.
using DreamBooth.Kernels;

namespace DreamBooth.Perf;

/// <summary>One piece of work: Run does it once; Outputs are compared with the reference backend's.</summary>
sealed class Work(IBackend backend) : IDisposable
{
    readonly List<DeviceBuffer> _owned = [];
    public Action Run { get; set; } = () => { };
    public List<DeviceBuffer> Outputs { get; } = [];

    /// <summary>Uniform random values in [-1, 1) from a seed, identical on every backend; f16/bf16 are cast from f32.</summary>
    public DeviceBuffer Random(long length, int seed, float scale = 1f, DType dtype = DType.F32)
    {
        var rng = new Random(seed);
        var values = new float[length];
        for (long i = 0; i < length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        var b = Zeros(length);
        backend.Upload<float>(b, values);
        if (dtype == DType.F32) return b;
        var narrow = Zeros(length, dtype);
        backend.Cast(narrow, b);
        return narrow;
    }

    public DeviceBuffer Constant(long length, float value)
    {
        var b = Zeros(length);
        backend.Fill(b, value);
        return b;
    }

    public DeviceBuffer Zeros(long length, DType dtype = DType.F32)
    {
        var b = backend.Allocate(dtype, length);
        _owned.Add(b);
        return b;
    }

    public DeviceBuffer Output(long length)
    {
        var b = Zeros(length);
        Outputs.Add(b);
        return b;
    }

    public void Dispose() { foreach (var b in _owned) b.Dispose(); }
}

/// <summary>A row of the table: the peer's op name and shape text, the FLOPs it counts, and how to build the work;
/// Bytes, for memory-bound ops, is the least traffic the op needs (each input read once, each output written once).</summary>
sealed record Case(string Op, string Shape, double Flops, Func<IBackend, Work> Build, double Bytes = 0);

static class Cases
{
    /// <summary>C (f32) = op(A)·op(B); A and B f32, or f16/bf16 with f32 accumulation ("matmul fp16 in").</summary>
    public static Case Gemm(int m, int n, int k, bool ta = false, bool tb = false, DType inputs = DType.F32) => new(
        inputs switch { DType.F16 => "matmul fp16 in", DType.BF16 => "matmul bf16 in", _ => "matmul fp32" },
        $"[{m}x{k}]x[{k}x{n}]" + (ta || tb ? $" t{(ta ? 1 : 0)}{(tb ? 1 : 0)}" : ""), 2.0 * m * n * k, be =>
        {
            var w = new Work(be);
            var a = w.Random((long)m * k, 1, dtype: inputs); var b = w.Random((long)k * n, 2, dtype: inputs); var c = w.Output((long)m * n);
            var s = new GemmShape(m, n, k, ta, tb);
            w.Run = () => be.Gemm(c, a, b, null, s);
            return w;
        });

    /// <summary>y = x·Wᵀ + b with W (out, in), as nn.Linear; the backward gives dx, dW and db.</summary>
    public static Case Linear(int rows, int inF, int outF, bool backward) => new(
        backward ? "linear fwd+bwd" : "linear fwd", $"[{rows}x{inF}]x[{inF}x{outF}] +bias",
        (backward ? 3 : 1) * 2.0 * rows * inF * outF, be =>
        {
            var w = new Work(be);
            var x = w.Random((long)rows * inF, 1); var wt = w.Random((long)outF * inF, 2, 0.05f); var bias = w.Random(outF, 3);
            var y = w.Output((long)rows * outF);
            var forward = new GemmShape(rows, outF, inF, TransB: true);
            if (!backward) { w.Run = () => be.Gemm(y, x, wt, bias, forward); return w; }
            var dy = w.Random((long)rows * outF, 4);
            var dx = w.Output((long)rows * inF); var dw = w.Output((long)outF * inF); var db = w.Output(outF);
            w.Run = () =>
            {
                be.Gemm(y, x, wt, bias, forward);
                be.Gemm(dx, dy, wt, null, new GemmShape(rows, inF, outF));                        // dx = dy·W
                be.Fill(dw, 0); be.Gemm(dw, dy, x, null, new GemmShape(outF, inF, rows, TransA: true, Beta: 1)); // dW += dyᵀ·x
                be.ReduceSum(db, dy, [rows, outF], [1, outF], 1f);                                  // db = Σ rows dy
            };
            return w;
        });

    public static Case Conv(int n, int c, int h, int wd, int outC, int k, int stride, int pad, bool backward)
    {
        var s = new ConvShape(n, c, h, wd, outC, k, k, stride, pad);
        string shape = $"x[{n},{c},{h},{wd}] w[{outC},{c},{k},{k}] p{pad}" + (stride != 1 ? $" s{stride}" : "");
        return new($"conv2d {k}x{k} {(backward ? "fwd+bwd" : "fwd")}", shape, (backward ? 3 : 1) * s.Flops, be =>
        {
            var w = new Work(be);
            var x = w.Random(s.InputLength, 1); var wt = w.Random(s.WeightLength, 2, 0.05f); var bias = w.Random(outC, 3);
            var y = w.Output(s.OutputLength);
            if (!backward) { w.Run = () => be.Conv2d(y, x, wt, bias, s); return w; }
            var dy = w.Random(s.OutputLength, 4);
            var dx = w.Output(s.InputLength); var dw = w.Output(s.WeightLength); var db = w.Output(outC);
            w.Run = () =>
            {
                be.Conv2d(y, x, wt, bias, s);
                be.Conv2dGradInput(dx, dy, wt, s);
                be.Fill(dw, 0); be.Fill(db, 0);
                be.Conv2dGradWeight(dw, db, dy, x, s);
            };
            return w;
        });
    }

    public static Case GroupNorm(int n, int c, int h, int wd, int groups, bool backward) => new(
        $"group_norm({groups}) {(backward ? "fwd+bwd" : "fwd")}", $"[{n},{c},{h},{wd}] affine", 0, be =>
        {
            var w = new Work(be);
            int hw = h * wd; long len = (long)n * c * hw;
            var x = w.Random(len, 1); var gamma = w.Constant(c, 1f); var beta = w.Constant(c, 0f);
            var y = w.Output(len); var mean = w.Zeros((long)n * groups); var rstd = w.Zeros((long)n * groups);
            if (!backward) { w.Run = () => be.GroupNorm(y, mean, rstd, x, gamma, beta, n, c, hw, groups, 1e-5f, false); return w; }
            var dy = w.Random(len, 4);
            var dx = w.Output(len); var dgamma = w.Output(c); var dbeta = w.Output(c);
            w.Run = () =>
            {
                be.GroupNorm(y, mean, rstd, x, gamma, beta, n, c, hw, groups, 1e-5f, false);
                be.Fill(dgamma, 0); be.Fill(dbeta, 0);
                be.GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups, false);
            };
            return w;
        }, (backward ? 5 : 2) * 4.0 * n * c * h * wd);   // fwd: x in, y out; bwd: x, dy in, dx out

    /// <summary>Layer norm over the last dim, as the transformer blocks run it on (tokens, channels).</summary>
    public static Case LayerNorm(int rows, int dim, bool backward) => new(
        $"layer_norm {(backward ? "fwd+bwd" : "fwd")}", $"[{rows}x{dim}] affine", 0, be =>
        {
            var w = new Work(be);
            long len = (long)rows * dim;
            var x = w.Random(len, 1); var gamma = w.Random(dim, 2); var beta = w.Random(dim, 3);
            var y = w.Output(len); var mean = w.Zeros(rows); var rstd = w.Zeros(rows);
            if (!backward) { w.Run = () => be.LayerNorm(y, mean, rstd, x, gamma, beta, rows, dim, 1e-5f); return w; }
            var dy = w.Random(len, 4);
            var dx = w.Output(len); var dgamma = w.Output(dim); var dbeta = w.Output(dim);
            w.Run = () =>
            {
                be.LayerNorm(y, mean, rstd, x, gamma, beta, rows, dim, 1e-5f);
                be.Fill(dgamma, 0); be.Fill(dbeta, 0);
                be.LayerNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, rows, dim);
            };
            return w;
        }, (backward ? 5 : 2) * 4.0 * rows * dim);   // fwd: x in, y out; bwd: x, dy in, dx out

    /// <summary>silu(group_norm(x)) as the models run it: fused into the group norm kernels, or as the two ops it was
    /// before (the norm's output z kept for SiLU's backward). Both give the same outputs; Bytes is the fused op's.</summary>
    public static Case GroupNormSilu(int n, int c, int h, int wd, int groups, bool backward, bool fused) => new(
        $"gn({groups}){(fused ? "+silu fused" : ", silu 2 ops")} {(backward ? "fwd+bwd" : "fwd")}", $"[{n},{c},{h},{wd}] affine", 0, be =>
        {
            var w = new Work(be);
            int hw = h * wd; long len = (long)n * c * hw;
            var x = w.Random(len, 1); var gamma = w.Random(c, 2); var beta = w.Random(c, 3);
            var y = w.Output(len); var mean = w.Zeros((long)n * groups); var rstd = w.Zeros((long)n * groups);
            var z = fused ? null : w.Zeros(len);
            void Forward()
            {
                if (fused) be.GroupNorm(y, mean, rstd, x, gamma, beta, n, c, hw, groups, 1e-5f, true);
                else
                {
                    be.GroupNorm(z!, mean, rstd, x, gamma, beta, n, c, hw, groups, 1e-5f, false);
                    be.Unary(UnaryOp.Silu, y, z!, len);
                }
            }
            if (!backward) { w.Run = Forward; return w; }
            var dy = w.Random(len, 4);
            var dx = w.Output(len); var dgamma = w.Output(c); var dbeta = w.Output(c);
            var dz = fused ? null : w.Zeros(len);
            w.Run = () =>
            {
                Forward();
                be.Fill(dgamma, 0); be.Fill(dbeta, 0);
                if (fused) be.GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups, true);
                else
                {
                    be.UnaryBackward(UnaryOp.Silu, dz!, dy, z!, len);
                    be.GroupNormBackward(dx, dgamma, dbeta, dz!, x, mean, rstd, gamma, beta, n, c, hw, groups, false);
                }
            };
            return w;
        }, (backward ? 5 : 2) * 4.0 * n * c * h * wd);   // fwd: x in, y out; bwd: x, dy in, dx out

    /// <summary>GEGLU as the UNet's feed-forward runs it: x = [h | gate] (rows, 2·dim) → y (rows, dim).</summary>
    public static Case Geglu(int rows, int dim, bool backward) => new(
        $"geglu {(backward ? "fwd+bwd" : "fwd")}", $"[{rows}x{2 * dim}]", 0, be =>
        {
            var w = new Work(be);
            long len = (long)rows * dim;
            var x = w.Random(2 * len, 1, 3f); var y = w.Output(len);
            if (!backward) { w.Run = () => be.Geglu(y, x, rows, dim); return w; }
            var dy = w.Random(len, 2); var dx = w.Output(2 * len);
            w.Run = () =>
            {
                be.Geglu(y, x, rows, dim);
                be.GegluBackward(dx, dy, x, rows, dim);
            };
            return w;
        }, (backward ? 8 : 3) * 4.0 * rows * dim);   // fwd: x in, y out; bwd: x, dy in, dx out

    /// <summary>One activation over n elements, and its backward.</summary>
    public static Case Activation(UnaryOp op, long n, bool backward) => new(
        $"{op.ToString().ToLowerInvariant()} {(backward ? "fwd+bwd" : "fwd")}", $"[{n}]", 0, be =>
        {
            var w = new Work(be);
            var x = w.Random(n, 1, 6f); var y = w.Output(n);
            if (!backward) { w.Run = () => be.Unary(op, y, x, n); return w; }
            var dy = w.Random(n, 2); var dx = w.Output(n);
            w.Run = () =>
            {
                be.Unary(op, y, x, n);
                be.UnaryBackward(op, dx, dy, x, n);
            };
            return w;
        }, (backward ? 5 : 2) * 4.0 * n);   // fwd: x in, y out; bwd: x, dy in, dx out

    /// <summary>The peer's sdpa rows: q [B,H,Lq,D] there, (B,Lq,H,D) here: the same work in the layout our linear layers write.</summary>
    public static Case Attention(int b, int heads, int lq, int lk, int d, bool causal, bool backward)
    {
        var s = new AttentionShape(b, heads, lq, lk, d, causal);
        string op = (lq == lk ? "sdpa self" : "sdpa cross") + (backward ? " fwd+bwd" : " fwd");
        string shape = $"q[{b},{heads},{lq},{d}] k,v[{b},{heads},{lk},{d}]" + (causal ? " causal" : "");
        return new(op, shape, (backward ? 3 : 1) * s.Flops, be =>
        {
            var w = new Work(be);
            var q = w.Random(s.QueryLength, 1); var k = w.Random(s.KeyLength, 2); var v = w.Random(s.KeyLength, 3);
            var o = w.Output(s.QueryLength); var lse = w.Output(s.LseLength);
            if (!backward) { w.Run = () => be.Attention(o, lse, q, k, v, s); return w; }
            var dout = w.Random(s.QueryLength, 4);
            var dq = w.Output(s.QueryLength); var dk = w.Output(s.KeyLength); var dv = w.Output(s.KeyLength);
            w.Run = () =>
            {
                be.Attention(o, lse, q, k, v, s);
                be.AttentionBackward(dq, dk, dv, dout, q, k, v, o, lse, s);
            };
            return w;
        });
    }

    public static Case AdamW(int n) => new("AdamW step", $"{n / 1_000_000}M fp32 params, 1 tensor", 0, be =>
    {
        var w = new Work(be);
        var p = w.Random(n, 1); var g = w.Random(n, 2); var m = w.Zeros(n); var v = w.Zeros(n);
        w.Outputs.Add(p);
        int step = 0;
        w.Run = () => be.AdamW(p, g, m, v, new AdamWStep(5e-6f, ++step), n);
        return w;
    }, 7 * 4.0 * n);   // p, g, m, v in; p, m, v out

    /// <summary>8-bit AdamW over n parameters: m and v as u8 codes with an f32 absmax per block of 256.</summary>
    public static Case AdamW8bit(int n) => new("AdamW 8-bit step", $"{n / 1_000_000}M fp32 params, 1 tensor", 0, be =>
    {
        var w = new Work(be);
        long blocks = DynamicMap.Blocks(n);
        var p = w.Random(n, 1); var g = w.Random(n, 2);
        var m = w.Zeros(n, DType.U8); var mMax = w.Zeros(blocks); var v = w.Zeros(n, DType.U8); var vMax = w.Zeros(blocks);
        w.Outputs.Add(p);
        int step = 0;
        w.Run = () => be.AdamW8bit(p, g, m, mMax, v, vMax, new AdamWStep(5e-6f, ++step), n);
        return w;
    }, 3 * 4.0 * n + 4.0 * n);   // p, g in and p out (f32); m, v codes in and out

    /// <summary>The rows of the peer's `ops` command, in its order.</summary>
    public static IEnumerable<Case> PeerOps()
    {
        yield return Gemm(512, 512, 512);
        yield return Gemm(1024, 1024, 1024);
        foreach (var (m, k, n) in new[] { (8192, 320, 320), (2048, 640, 1920) })
        {
            yield return Linear(m, k, n, false);
            yield return Linear(m, k, n, true);
        }
        foreach (var (b, c, side) in new[] { (4, 64, 32), (2, 320, 64) })
        {
            yield return Conv(b, c, side, side, c, 3, 1, 1, false);
            yield return Conv(b, c, side, side, c, 3, 1, 1, true);
        }
        yield return GroupNorm(4, 128, 32, 32, 32, true);
        foreach (int keys in new[] { 1024, 77 })
        {
            yield return Attention(4, 8, 1024, keys, 40, false, false);
            yield return Attention(4, 8, 1024, keys, 40, false, true);
        }
        yield return AdamW(10_000_000);
    }
}
