// The CUDA backend on the CPU emulator against the reference backend: every IBackend op once at a tiny shape, plus memory.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using DreamBooth.Tests.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class IlgpuBackendTests
{
    // The emulator computes in f32 like the GPU; the reference computes in double and rounds once.
    const double Exact = 0;            // data movement, casts, fills, uniform draws: bit-identical by construction
    const double PointAtol = 1e-6, PointRtol = 1e-5;   // one f32 elementwise formula (exp, erf approximations)
    const double SumAtol = 1e-5, SumRtol = 1e-4;       // f32 sums of up to ~100 products in a different order
    const double NormalAtol = 1e-5;    // Box-Muller in f32 (PhiloxKernels: within about 1e-6 of the reference on the CPU)

    IlgpuBackend _cuda = null!;
    IBackend _ref = null!;

    [OneTimeSetUp]
    public void Create()
    {
        _cuda = Backends.CreateEmulated();
        _ref = Backends.Create("reference");
    }

    [OneTimeTearDown]
    public void Dispose()
    {
        _cuda.Dispose();
        _ref.Dispose();
    }

    static float[] Data(int seed, long n, double scale = 1.0) => TestData.ToFloat(TestData.Uniform(seed, n, scale));
    static float[] Zeros(long n) => new float[n];

    /// <summary>Buffers from the inputs (float[] → f32, int[] → i32), the op on them, and every f32 buffer read back.</summary>
    static float[][] RunOn(IBackend backend, object[] inputs, Action<IBackend, DeviceBuffer[]> op)
    {
        var buffers = inputs.Select(v =>
        {
            if (v is int[] ints)
            {
                var b = backend.Allocate(DType.I32, ints.Length);
                backend.Upload<int>(b, ints);
                return b;
            }
            var f = (float[])v;
            var fb = backend.Allocate(DType.F32, f.Length);
            backend.Upload<float>(fb, f);
            return fb;
        }).ToArray();
        try
        {
            op(backend, buffers);
            return buffers.Select(b =>
            {
                var host = new float[b.DType == DType.F32 ? b.Length : 0];
                if (b.DType == DType.F32) backend.Download<float>(host, b);
                return host;
            }).ToArray();
        }
        finally
        {
            foreach (var b in buffers) b.Dispose();
        }
    }

    /// <summary>Runs op on both backends from identical inputs and compares the buffers at the output positions.</summary>
    void Compare(string what, double atol, double rtol, object[] inputs, Action<IBackend, DeviceBuffer[]> op, params int[] outputs)
    {
        var got = RunOn(_cuda, inputs, op);
        var want = RunOn(_ref, inputs, op);
        foreach (int o in outputs) Close.Assert(got[o], want[o], atol, rtol, $"{what}, buffer {o}");
    }

    /// <summary>The raw element bits of a buffer of any dtype after op, on one backend (inputs given as bits too).</summary>
    static uint[] Bits(IBackend backend, DType dtype, uint[] bits, Func<IBackend, DeviceBuffer, DeviceBuffer> op)
    {
        using var src = backend.Allocate(dtype, bits.Length);
        if (dtype.Size() == 4) backend.Upload<uint>(src, bits);
        else backend.Upload<ushort>(src, bits.Select(b => (ushort)b).ToArray());
        using var dst = op(backend, src);
        if (dst.DType.Size() == 4)
        {
            var out32 = new uint[dst.Length];
            backend.Download<uint>(out32, dst);
            return out32;
        }
        var out16 = new ushort[dst.Length];
        backend.Download<ushort>(out16, dst);
        return out16.Select(b => (uint)b).ToArray();
    }

    void CompareBits(string what, DType dtype, uint[] bits, Func<IBackend, DeviceBuffer, DeviceBuffer> op) =>
        Assert.That(Bits(_cuda, dtype, bits, op), Is.EqualTo(Bits(_ref, dtype, bits, op)), what);

    static readonly uint[] SixteenBitSamples = [0x0000, 0x8000, 0x3C00, 0x7BFF, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E01, 0x4049, 0xC0A0, 0x1234];

    // ---- matrix products and convolution ----

    [TestCase(false, false, true, 1)]
    [TestCase(true, false, false, 2)]
    [TestCase(false, true, true, 3)]
    [TestCase(true, true, false, 1)]
    public void Gemm(bool transA, bool transB, bool bias, int batch)
    {
        var s = new GemmShape(5, 70, 3, transA, transB, Alpha: 0.5f, Beta: 0.25f, Batch: batch);
        Compare($"gemm {s}", SumAtol, SumRtol,
            [Data(1, s.BatchStrideC * batch), Data(2, s.BatchStrideA * batch), Data(3, s.BatchStrideB * batch), Data(4, s.N)],
            (be, b) => be.Gemm(b[0], b[1], b[2], bias ? b[3] : null, s), 0);
    }

    [Test]
    public void GemmSumsOverTheBatchIntoOneC()
    {
        var s = new GemmShape(4, 3, 6, TransA: true, Beta: 1f, Batch: 3, StrideC: 0);
        Compare("gemm, StrideC 0", SumAtol, SumRtol, [Data(5, 12), Data(6, 3 * 24), Data(7, 3 * 18), Data(8, 3)],
            (be, b) => be.Gemm(b[0], b[1], b[2], b[3], s), 0);
    }

    /// <summary>C after a GEMM whose A and B are f16/bf16 bits (C starts at cInit), on one backend.</summary>
    static float[] HalfGemm(IBackend backend, DType inputs, ushort[] a, ushort[] b, float[] cInit, GemmShape s)
    {
        using var ab = backend.Allocate(inputs, a.Length);
        using var bb = backend.Allocate(inputs, b.Length);
        using var cb = backend.Allocate(DType.F32, cInit.Length);
        backend.Upload<ushort>(ab, a);
        backend.Upload<ushort>(bb, b);
        backend.Upload<float>(cb, cInit);
        backend.Gemm(cb, ab, bb, null, s);
        var c = new float[cInit.Length];
        backend.Download<float>(c, cb);
        return c;
    }

    [Test]
    public void GemmWithHalfInputs([Values(DType.F16, DType.BF16)] DType inputs)
    {
        // One launch over the batch, and batches summed into one C (StrideC 0) in order.
        foreach (var s in new[] { new GemmShape(5, 70, 3, TransA: true, Alpha: 0.5f, Beta: 0.25f, Batch: 2),
                                  new GemmShape(4, 3, 6, TransB: true, Beta: 1f, Batch: 3, StrideC: 0) })
        {
            ushort[] a = GemmTests.HalfBits(GemmTests.Rounded(TestData.Uniform(1, s.BatchStrideA * s.Batch), inputs), inputs);
            ushort[] b = GemmTests.HalfBits(GemmTests.Rounded(TestData.Uniform(2, s.BatchStrideB * s.Batch), inputs), inputs);
            float[] c = Data(3, s.StrideC == 0 ? s.M * s.N : s.BatchStrideC * s.Batch);
            Close.Assert(HalfGemm(_cuda, inputs, a, b, c, s), HalfGemm(_ref, inputs, a, b, c, s), SumAtol, SumRtol, $"gemm {inputs.Name()} {s}");
        }
        // C = A·I: every finite sample of the 16-bit patterns (subnormals, the largest f16) widens exactly.
        ushort[] samples = SixteenBitSamples.Select(v => (ushort)v).Where(v => (v & 0x7C00) != 0x7C00).ToArray();
        int m = samples.Length;
        var identity = new ushort[m * m];
        for (int i = 0; i < m; i++) identity[i * m + i] = inputs == DType.F16 ? (ushort)0x3C00 : (ushort)0x3F80;
        var exact = new GemmShape(1, m, m);
        Assert.That(HalfGemm(_cuda, inputs, samples, identity, new float[m], exact), Is.EqualTo(HalfGemm(_ref, inputs, samples, identity, new float[m], exact)),
            $"gemm {inputs.Name()}: exact widening");
    }

    static readonly ConvShape Conv = new(2, 3, 5, 4, 4, 3, 3, Stride: 2, Pad: 1);

    [Test]
    public void Conv2dForwardAndBackward()
    {
        var s = Conv;
        long y = (long)s.N * s.OutC * s.OutH * s.OutW, x = (long)s.N * s.InC * s.H * s.W, w = (long)s.OutC * s.InC * s.KH * s.KW;
        Compare("conv2d", SumAtol, SumRtol, [Zeros(y), Data(1, x), Data(2, w), Data(3, s.OutC)],
            (be, b) => be.Conv2d(b[0], b[1], b[2], b[3], s), 0);
        Compare("conv2d grad input", SumAtol, SumRtol, [Data(9, x), Data(4, y), Data(2, w)],
            (be, b) => be.Conv2dGradInput(b[0], b[1], b[2], s), 0);
        // dw and dbias start non-zero: they are accumulated into.
        Compare("conv2d grad weight", SumAtol, SumRtol, [Data(5, w), Data(6, s.OutC), Data(4, y), Data(1, x)],
            (be, b) => be.Conv2dGradWeight(b[0], b[1], b[2], b[3], s), 0, 1);
    }

    // ---- normalisation, softmax, attention ----

    [Test]
    public void GroupNormForwardAndBackward()
    {
        int n = 2, c = 4, hw = 5, g = 2;
        Compare("group norm", SumAtol, SumRtol, [Zeros(n * c * hw), Zeros(n * g), Zeros(n * g), Data(1, n * c * hw), Data(2, c), Data(3, c)],
            (be, b) => be.GroupNorm(b[0], b[1], b[2], b[3], b[4], b[5], n, c, hw, g, 1e-5f), 0, 1, 2);
        var stats = RunOn(_ref, [Zeros(n * c * hw), Zeros(n * g), Zeros(n * g), Data(1, n * c * hw), Data(2, c), Data(3, c)],
            (be, b) => be.GroupNorm(b[0], b[1], b[2], b[3], b[4], b[5], n, c, hw, g, 1e-5f));
        Compare("group norm backward", SumAtol, SumRtol, [Zeros(n * c * hw), Data(4, c), Data(5, c), Data(6, n * c * hw), Data(1, n * c * hw), stats[1], stats[2], Data(2, c)],
            (be, b) => be.GroupNormBackward(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], n, c, hw, g), 0, 1, 2);
    }

    [Test]
    public void LayerNormForwardAndBackward()
    {
        int rows = 3, dim = 37;
        Compare("layer norm", SumAtol, SumRtol, [Zeros(rows * dim), Zeros(rows), Zeros(rows), Data(1, rows * dim), Data(2, dim), Data(3, dim)],
            (be, b) => be.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], rows, dim, 1e-5f), 0, 1, 2);
        var stats = RunOn(_ref, [Zeros(rows * dim), Zeros(rows), Zeros(rows), Data(1, rows * dim), Data(2, dim), Data(3, dim)],
            (be, b) => be.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], rows, dim, 1e-5f));
        Compare("layer norm backward", SumAtol, SumRtol, [Zeros(rows * dim), Data(4, dim), Data(5, dim), Data(6, rows * dim), Data(1, rows * dim), stats[1], stats[2], Data(2, dim)],
            (be, b) => be.LayerNormBackward(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], rows, dim), 0, 1, 2);
    }

    [Test]
    public void SoftmaxForwardAndBackward()
    {
        int rows = 3, cols = 41;
        Compare("softmax", PointAtol, PointRtol, [Zeros(rows * cols), Data(1, rows * cols, 4)],
            (be, b) => be.Softmax(b[0], b[1], rows, cols), 0);
        Compare("softmax backward", PointAtol, SumRtol, [Zeros(rows * cols), Data(2, rows * cols), Data(3, rows * cols, 0.05)],
            (be, b) => be.SoftmaxBackward(b[0], b[1], b[2], rows, cols), 0);
    }

    [TestCase(false, 3, 5)]
    [TestCase(true, 4, 4)]
    public void AttentionForwardAndBackward(bool causal, int lq, int lk)
    {
        var s = new AttentionShape(1, 2, lq, lk, 8, causal);
        Compare($"attention {s}", SumAtol, SumRtol, [Zeros(s.QueryLength), Zeros(s.LseLength), Data(1, s.QueryLength), Data(2, s.KeyLength), Data(3, s.KeyLength)],
            (be, b) => be.Attention(b[0], b[1], b[2], b[3], b[4], s), 0, 1);
        var forward = RunOn(_ref, [Zeros(s.QueryLength), Zeros(s.LseLength), Data(1, s.QueryLength), Data(2, s.KeyLength), Data(3, s.KeyLength)],
            (be, b) => be.Attention(b[0], b[1], b[2], b[3], b[4], s));
        Compare($"attention backward {s}", SumAtol, SumRtol,
            [Zeros(s.QueryLength), Zeros(s.KeyLength), Zeros(s.KeyLength), Data(4, s.QueryLength), Data(1, s.QueryLength), Data(2, s.KeyLength),
             Data(3, s.KeyLength), forward[0], forward[1]],
            (be, b) => be.AttentionBackward(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], s), 0, 1, 2);
    }

    // ---- elementwise and broadcasting ----

    [TestCase(UnaryOp.Silu)]
    [TestCase(UnaryOp.Gelu)]
    [TestCase(UnaryOp.GeluTanh)]
    [TestCase(UnaryOp.QuickGelu)]
    public void UnaryForwardAndBackward(UnaryOp op)
    {
        Compare($"unary {op}", PointAtol, PointRtol, [Zeros(37), Data(1, 37, 5)], (be, b) => be.Unary(op, b[0], b[1], 37), 0);
        Compare($"unary backward {op}", PointAtol, PointRtol, [Zeros(37), Data(2, 37), Data(1, 37, 5)],
            (be, b) => be.UnaryBackward(op, b[0], b[1], b[2], 37), 0);
    }

    [TestCase(BinaryOp.Add)]
    [TestCase(BinaryOp.Sub)]
    [TestCase(BinaryOp.Mul)]
    [TestCase(BinaryOp.Div)]
    public void BinaryForwardAndBackward(BinaryOp op)
    {
        int[] aShape = [2, 1, 3], bShape = [4, 1];
        float[] a = Data(1, 6), b = Data(2, 4).Select(v => v + 2f).ToArray();   // b away from 0 for div
        Compare($"binary {op}", PointAtol, PointRtol, [Zeros(24), a, b], (be, x) => be.Binary(op, x[0], x[1], x[2], aShape, bShape), 0);
        Compare($"binary backward {op}", PointAtol, SumRtol, [Data(3, 6), Data(4, 4), Data(5, 24), a, b],
            (be, x) => be.BinaryBackward(op, x[0], x[1], x[2], x[3], x[4], aShape, bShape), 0, 1);
        // Only one gradient wanted, the other operand full-shape (written directly, no reduction).
        Compare($"binary backward {op}, db only", PointAtol, SumRtol, [Data(4, 12), Data(5, 12), Data(1, 4), Data(2, 12)],
            (be, x) => be.BinaryBackward(op, null, x[0], x[1], x[2], x[3], [4], [3, 4]), 0);
    }

    [Test]
    public void ScaleAndAxpy()
    {
        Compare("scale", PointAtol, PointRtol, [Data(9, 33), Data(1, 33)], (be, b) => be.Scale(b[0], b[1], -1.5f, 33), 0);
        Compare("axpy", PointAtol, PointRtol, [Data(9, 33), Data(1, 33)], (be, b) => be.Axpy(b[0], b[1], 0.75f, 33), 0);
    }

    [Test]
    public void GegluForwardAndBackward()
    {
        int rows = 3, dim = 5;
        Compare("geglu", PointAtol, PointRtol, [Zeros(rows * dim), Data(1, rows * 2 * dim, 3)], (be, b) => be.Geglu(b[0], b[1], rows, dim), 0);
        Compare("geglu backward", PointAtol, PointRtol, [Zeros(rows * 2 * dim), Data(2, rows * dim), Data(1, rows * 2 * dim, 3)],
            (be, b) => be.GegluBackward(b[0], b[1], b[2], rows, dim), 0);
    }

    // ---- data movement ----

    [TestCase(DType.F32, 1.1f)]
    [TestCase(DType.F16, 1.1f)]
    [TestCase(DType.BF16, -3.3f)]
    [TestCase(DType.F16, 65520f)]     // rounds to +Inf in f16
    [TestCase(DType.I32, -7.9f)]      // truncates toward zero
    public void Fill(DType dtype, float value) =>
        CompareBits($"fill {dtype.Name()} {value}", dtype, new uint[13], (be, src) =>
        {
            be.Fill(src, value);
            var copy = be.Allocate(dtype, src.Length);
            be.Copy(copy, src);
            return copy;
        });

    [TestCase(DType.F32)]
    [TestCase(DType.BF16)]
    public void StridedCopyTransposes(DType dtype)
    {
        // src (4, 3) read as its transpose (3, 4), starting one element in, from a 13-element buffer.
        var bits = Enumerable.Range(1, 13).Select(i => (uint)i * 0x0101u).ToArray();
        CompareBits($"strided copy {dtype.Name()}", dtype, bits, (be, src) =>
        {
            var dst = be.Allocate(dtype, 12);
            be.StridedCopy(dst, src, [3, 4], [1, 3], 1);
            return dst;
        });
    }

    [TestCase(DType.F32)]
    [TestCase(DType.F16)]
    public void ConcatSliceAndSliceBackward(DType dtype)
    {
        // (outer 2, axis 5, inner 3): concat of axes 2 and 3, slice [1, 4) of the axis, slice backward of that.
        var bits = Enumerable.Range(1, 30).Select(i => (uint)i * 0x0101u).ToArray();
        CompareBits($"concat {dtype.Name()}", dtype, bits, (be, src) =>
        {
            var y = be.Allocate(dtype, 30);
            be.Concat(y, src.Slice(0, 12), src.Slice(12, 18), 2, 2, 3, 3);
            return y;
        });
        CompareBits($"slice {dtype.Name()}", dtype, bits, (be, src) =>
        {
            var y = be.Allocate(dtype, 18);
            be.Slice(y, src, 2, 5, 1, 3, 3);
            return y;
        });
        CompareBits($"slice backward {dtype.Name()}", dtype, bits, (be, src) =>
        {
            var dx = be.Allocate(dtype, 30);
            be.Fill(dx, 5f);   // stale values outside the slice must become 0
            be.SliceBackward(dx, src.Slice(0, 18), 2, 5, 1, 3, 3);
            return dx;
        });
    }

    [TestCase(DType.F32, DType.F16)]
    [TestCase(DType.F32, DType.BF16)]
    [TestCase(DType.F16, DType.F32)]
    [TestCase(DType.BF16, DType.F32)]
    [TestCase(DType.F16, DType.BF16)]
    [TestCase(DType.BF16, DType.F16)]
    [TestCase(DType.F16, DType.F16)]
    public void Cast(DType from, DType to)
    {
        uint[] bits = from == DType.F32
            ? [0x3F8CCCCDu, 0x477FF000u, 0xC0490FDBu, 0x7FC00001u, 0x00000001u, 0x33800000u, 0xFF800000u, 0x3F800001u]
            : SixteenBitSamples;
        CompareBits($"cast {from.Name()} -> {to.Name()}", from, bits, (be, src) =>
        {
            var dst = be.Allocate(to, src.Length);
            be.Cast(dst, src);
            return dst;
        });
    }

    [Test]
    public void CopyAnyDtypeAndAcrossSlices()
    {
        CompareBits("copy i32", DType.I32, [1, 2, 3, 0xFFFFFFFF, 5], (be, src) =>
        {
            var dst = be.Allocate(DType.I32, 5);
            be.Copy(dst, src);
            return dst;
        });
        CompareBits("copy f16 between slices", DType.F16, SixteenBitSamples, (be, src) =>
        {
            var dst = be.Allocate(DType.F16, src.Length);
            be.Copy(dst.Slice(3, 5), src.Slice(1, 5));
            return dst;
        });
    }

    // ---- reductions and losses ----

    [Test]
    public void ReduceSum() =>
        Compare("reduce sum", SumAtol, SumRtol, [Zeros(3), Data(1, 24)], (be, b) => be.ReduceSum(b[0], b[1], [2, 3, 4], [1, 3, 1], 0.5f), 0);

    [TestCase(1)]
    [TestCase(3000)]   // three level-1 groups
    public void SumSquaresAndMse(int n)
    {
        Compare($"sum squares n={n}", SumAtol, SumRtol, [Zeros(1), Data(1, n)], (be, b) => be.SumSquares(b[0], b[1], n), 0);
        Compare($"mse loss n={n}", SumAtol, SumRtol, [Zeros(1), Data(1, n), Data(2, n)], (be, b) => be.MseLoss(b[0], b[1], b[2], n), 0);
        Compare($"mse loss backward n={n}", PointAtol, PointRtol, [Zeros(n), Data(1, n), Data(2, n)],
            (be, b) => be.MseLossBackward(b[0], b[1], b[2], 0.7f, n), 0);
    }

    // ---- resampling and lookup ----

    [Test]
    public void UpsampleForwardAndBackward()
    {
        int planes = 2, h = 3, w = 5;
        Compare("upsample", Exact, Exact, [Zeros(4 * planes * h * w), Data(1, planes * h * w)],
            (be, b) => be.UpsampleNearest2x(b[0], b[1], planes, h, w), 0);
        Compare("upsample backward", PointAtol, PointRtol, [Zeros(planes * h * w), Data(2, 4 * planes * h * w)],
            (be, b) => be.UpsampleNearest2xBackward(b[0], b[1], planes, h, w), 0);
    }

    [Test]
    public void EmbeddingForwardAndBackward()
    {
        int vocab = 5, dim = 3;
        int[] ids = [4, 0, 4, 2];
        Compare("embedding", Exact, Exact, [Zeros(ids.Length * dim), Data(1, vocab * dim), ids],
            (be, b) => be.Embedding(b[0], b[1], b[2], ids.Length, dim), 0);
        Compare("embedding backward", PointAtol, PointRtol, [Data(2, vocab * dim), Data(3, ids.Length * dim), ids],
            (be, b) => be.EmbeddingBackward(b[0], b[1], b[2], ids.Length, dim), 0);
    }

    [Test]
    public void EmbeddingRejectsAnIdOutsideTheTable()
    {
        using var y = _cuda.Allocate(DType.F32, 6);
        using var table = _cuda.Allocate(DType.F32, 9);
        using var ids = _cuda.Allocate(DType.I32, 2);
        _cuda.Upload<int>(ids, [1, 3]);
        Assert.Throws(Is.InstanceOf<ArgumentException>().And.Message.Contains("embedding"), () => _cuda.Embedding(y, table, ids, 2, 3));
    }

    // ---- optimizer and random numbers ----

    [Test]
    public void AdamW()
    {
        var s = new AdamWStep(1e-2f, 3, GradScale: 0.5f);
        Compare("adamw", PointAtol, PointRtol, [Data(1, 21), Data(2, 21), Data(3, 21, 0.1), Data(4, 21, 0.01).Select(Math.Abs).ToArray()],
            (be, b) => be.AdamW(b[0], b[1], b[2], b[3], s, 21), 0, 2, 3);
    }

    [Test]
    public void RandomUniformAndNormal()
    {
        Compare("random uniform", Exact, Exact, [Zeros(13)], (be, b) => be.RandomUniform(b[0], 42, 7), 0);
        Compare("random normal", NormalAtol, PointRtol, [Zeros(13)], (be, b) => be.RandomNormal(b[0], 42, 7), 0);
    }

    // ---- memory ----

    [Test]
    public void FreedBlocksAreReusedZeroedAndCountedBackToZero()
    {
        using var backend = Backends.CreateEmulated();
        var first = backend.Allocate(DType.F32, 100);          // 400 bytes: a 512-byte block
        backend.Upload<float>(first, Data(1, 100));
        first.Dispose();
        Assert.That(backend.Memory.CurrentBytes, Is.Zero);
        var second = backend.Allocate(DType.F16, 200);         // 400 bytes again: the same size class
        Assert.That(backend.PooledBlocks, Is.EqualTo(1), "the freed block is reused");
        var back = new ushort[200];
        backend.Download<ushort>(back, second);
        Assert.That(back, Is.All.Zero, "a reused block is zero-filled");
        using var other = backend.Allocate(DType.F32, 1000);   // a different size class: a new block
        Assert.That(backend.PooledBlocks, Is.EqualTo(2));
        Assert.That(backend.Memory.CurrentBytes, Is.EqualTo(400 + 4000));
        Assert.That(backend.Memory.PeakBytes, Is.EqualTo(400 + 4000));
        second.Dispose();
        other.Dispose();
        Assert.That(backend.Memory.CurrentBytes, Is.Zero);
        Assert.That(IlgpuBackend.BlockBytes(1), Is.EqualTo(256));
        Assert.That(IlgpuBackend.BlockBytes(257), Is.EqualTo(512));
    }

    [Test]
    public void SlicesShareMemoryAndOwnNothing()
    {
        var parent = _cuda.Allocate(DType.F32, 8);
        _cuda.Upload<float>(parent, [1, 2, 3, 4, 5, 6, 7, 8]);
        var slice = parent.Slice(2, 3);
        _cuda.Scale(slice, slice, 10f, 3);
        slice.Dispose();                                          // owns nothing: the parent stays usable
        var back = new float[8];
        _cuda.Download<float>(back, parent);
        Assert.That(back, Is.EqualTo(new float[] { 1, 2, 30, 40, 50, 6, 7, 8 }));
        var tail = new float[2];
        _cuda.Download<float>(tail, parent.Slice(4, 3).Slice(1, 2));
        Assert.That(tail, Is.EqualTo(new float[] { 6, 7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => parent.Slice(6, 3));
        var live = parent.Slice(0, 1);
        parent.Dispose();
        Assert.That(live.IsDisposed, Is.True, "a slice dies with its owner");
        Assert.Throws<ObjectDisposedException>(() => _cuda.Scale(live, live, 1f, 1));
    }

    [Test]
    public void UploadAndDownloadSizesMustMatch()
    {
        using var b = _cuda.Allocate(DType.F32, 4);
        Assert.Throws(Is.InstanceOf<ArgumentException>().And.Message.Contains("upload"), () => _cuda.Upload<float>(b, new float[3]));
        Assert.Throws(Is.InstanceOf<ArgumentException>().And.Message.Contains("download"), () => _cuda.Download<float>(new float[5], b));
        var bytes = new byte[16];
        _cuda.Download<byte>(bytes, b);                           // any element type with the same byte count
        Assert.That(bytes, Is.All.Zero);
    }

    [Test]
    public void RejectsAnotherBackendsBuffer()
    {
        using var mine = _cuda.Allocate(DType.F32, 4);
        using var theirs = _ref.Allocate(DType.F32, 4);
        var e = Assert.Throws<ArgumentException>(() => _cuda.Scale(mine, theirs, 2f, 4));
        Assert.That(e!.Message, Does.Contain("scale").And.Contain("reference"));
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        using var c = _cuda.Allocate(DType.F32, 4);
        var e = Assert.Throws<ArgumentException>(() => _cuda.Gemm(c, c, c, null, new GemmShape(2, 2, 0)));
        Assert.That(e!.Message, Does.Contain("gemm"));
        var s = Assert.Throws<ArgumentException>(() => _cuda.Softmax(c, c, 2, 3));
        Assert.That(s!.Message, Does.Contain("softmax"));
    }

    [Test]
    public void CreateNamesTheMissingDeviceAndAutoFallsBack()
    {
        Assert.That(_cuda.Name, Is.EqualTo("cuda"));
        if (IlgpuDevice.CudaPresent()) Assert.Ignore("a CUDA GPU is present");
        var e = Assert.Throws<ArgumentException>(() => Backends.Create("cuda"));
        Assert.That(e!.Message, Does.Contain("no CUDA device found; use --device cpu"));
        using var auto = Backends.Auto();
        Assert.That(auto.Name, Is.EqualTo("cpu"));
    }
}
