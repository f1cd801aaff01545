// GEMM on every backend against the double reference: transposes, edge sizes, block-crossing sizes, batches, alpha/beta/bias,
// and f16/bf16 inputs with f32 accumulation.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class GemmTests(string backend) : BackendTest(backend)
{
    // f32 accumulation over K products of inputs in [-1, 1): the rounding error of a sum of K terms grows about like
    // sqrt(K)·eps·|partial sums|; 1e-5·sqrt(K) (per unit of |alpha|) leaves a margin of 10× and more. The same bound
    // holds for f16/bf16 inputs: the test rounds them to half first, they widen to f32 exactly, and the product of two
    // halves (11- or 8-bit significands) is exact in f32, so again only the f32 accumulation rounds.
    const double AtolPerSqrtK = 1e-5;
    // Rounding the result to f32, and the beta·C and bias terms added to it.
    internal const double Rtol = 1e-4;

    internal static double Atol(in GemmShape s) => 1e-6 + AtolPerSqrtK * Math.Sqrt(s.K) * Math.Max(1, Math.Abs(s.Alpha));

    /// <summary>Runs s on the backend over random A, B (of the inputs dtype), C (and bias) and compares all of C with the
    /// reference.</summary>
    void Verify(GemmShape s, bool bias = false, bool nanC = false, int seed = 1, DType inputs = DType.F32)
    {
        long aLen = (s.Batch - 1) * s.BatchStrideA + (long)s.M * s.K;
        long bLen = (s.Batch - 1) * s.BatchStrideB + (long)s.K * s.N;
        long cLen = (s.Batch - 1) * s.BatchStrideC + (long)s.M * s.N;
        double[] a = Rounded(TestData.Uniform(seed, aLen), inputs), b = Rounded(TestData.Uniform(seed + 1, bLen), inputs);
        double[] c = nanC ? Enumerable.Repeat(double.NaN, (int)cLen).ToArray() : TestData.Uniform(seed + 2, cLen);
        double[] biasValues = bias ? TestData.Uniform(seed + 3, s.N) : [];
        var expected = (double[])c.Clone();
        GemmReference.Gemm(expected, a, b, biasValues, s);
        var cBuf = Buf(c);
        Backend.Gemm(cBuf, Input(a, inputs), Input(b, inputs), bias ? Buf(biasValues) : null, s);
        Close.Assert(Read(cBuf), expected, Atol(s), Rtol, $"{s} {inputs.Name()}");
    }

    /// <summary>The values rounded to the dtype (nearest even), as exact doubles.</summary>
    internal static double[] Rounded(double[] values, DType dtype) => dtype switch
    {
        DType.F16 => values.Select(v => (double)HalfPrecision.HalfToFloat(HalfPrecision.FloatToHalf((float)v))).ToArray(),
        DType.BF16 => values.Select(v => (double)HalfPrecision.BFloat16ToFloat(HalfPrecision.FloatToBFloat16((float)v))).ToArray(),
        _ => values,
    };

    /// <summary>The f16 or bf16 bits of values (exact when they come from Rounded).</summary>
    internal static ushort[] HalfBits(double[] values, DType dtype) =>
        values.Select(v => dtype == DType.F16 ? HalfPrecision.FloatToHalf((float)v) : HalfPrecision.FloatToBFloat16((float)v)).ToArray();

    /// <summary>A buffer of the dtype holding values that it represents exactly.</summary>
    DeviceBuffer Input(double[] values, DType dtype)
    {
        if (dtype == DType.F32) return Buf(values);
        var buffer = Zeros(values.Length, dtype);
        Backend.Upload<ushort>(buffer, HalfBits(values, dtype));
        return buffer;
    }

    // Single-element axes, sizes that are not multiples of the vector width, and sizes that cross the Cpu tier's
    // micro-tile (6×64) and depth slab (256) and the CUDA tier's 64×64 tile and 16-deep slab (65, 66, 100; 17, 33, 257);
    // the host-scale ones cross the Cpu tier's column block (512) and row block (1032) and run on both cores, with the
    // rows split and B's panels shared (200×150; 2100×2070 crosses their 2048-column width) or the columns split and
    // A's panels shared (70×130, 150×300; 1100×1200 crosses their 1032 rows). With whole panels of columns and few rows
    // (100×128, 300×192), or a split depth (64×64×4096), an untransposed B is read where it is, not packed.
    static readonly int[][] Sizes = [[1, 1, 1], [1, 17, 33], [17, 1, 33], [33, 17, 1], [100, 33, 17], [7, 65, 257], [65, 66, 33], [17, 100, 300]];
    static readonly int[][] HostSizes = [[70, 130, 600], [13, 600, 40], [1100, 9, 5], [200, 150, 300], [150, 300, 100],
        [2100, 2070, 5], [1100, 1200, 5], [100, 128, 300], [300, 192, 70], [64, 64, 4096]];
    static readonly bool[] Bools = [false, true];

    public static IEnumerable<TestCaseData> TransposeCases() =>
        from mnk in Sizes.Concat(HostSizes)
        from transA in Bools
        from transB in Bools
        select HostScaleIf(HostSizes.Contains(mnk), new TestCaseData(mnk, transA, transB));

    [TestCaseSource(nameof(TransposeCases))]
    public void AllTransposes(int[] mnk, bool transA, bool transB) =>
        Verify(new GemmShape(mnk[0], mnk[1], mnk[2], transA, transB));

    [TestCase(0.5f, -1.5f, true)]
    [TestCase(2f, 1f, false)]
    [TestCase(-1f, 0f, true)]
    public void AlphaBetaBias(float alpha, float beta, bool bias)
    {
        // K = 300 spans two depth slabs: beta and the bias must be applied once, not once per slab.
        Verify(new GemmShape(20, 70, 300, Alpha: alpha, Beta: beta), bias);
        Verify(new GemmShape(130, 140, 300, TransA: true, TransB: true, Alpha: alpha, Beta: beta), bias);
    }

    [Test]
    public void DeepProductOfSmallC([Values] bool transA, [Values] bool transB)
    {
        // K ≥ 8·max(M, N) and over the parallel threshold: the Cpu tier splits the depth (not a multiple of its 256 slab)
        // across threads; beta, alpha and the bias apply once, and NaN in C is not read when beta is 0.
        Verify(new GemmShape(20, 37, 3001, transA, transB, Alpha: 0.5f, Beta: -1.5f), bias: true);
        Verify(new GemmShape(37, 20, 3001, transA, transB), nanC: true);
    }

    [Test]
    public void BetaZeroDoesNotReadC()
    {
        Verify(new GemmShape(9, 70, 20), nanC: true);
        Verify(new GemmShape(100, 140, 300, TransB: true), bias: true, nanC: true);
    }

    [Test]
    public void BatchedWithStridesAndBroadcast()
    {
        // Gaps between the batch matrices (which must keep their values), and B shared by every batch (stride 0).
        Verify(new GemmShape(5, 7, 9, Batch: 3, StrideA: 5 * 9 + 4, StrideB: 0, StrideC: 5 * 7 + 3), bias: true);
        Verify(new GemmShape(6, 65, 30, TransA: true, Batch: 5, StrideA: 0, StrideC: 6 * 65 + 1));   // enough batches to run in parallel
        Verify(new GemmShape(1, 1, 1, Batch: 8));
        Verify(new GemmShape(40, 100, 70, TransB: true, Batch: 2, StrideB: 0));
    }

    [Test]
    public void OverlappingBatchesSumInOrder() =>   // C stride 0 with beta 1: C += Σ_b A[b]·B[b], the way dW sums a batch
        Verify(new GemmShape(8, 70, 12, Beta: 1, Batch: 5, StrideC: 0));

    [Test]
    public void LinearLayerAtSmallScale()
    {
        // y = x·Wᵀ + b with W (out, in); dX = dY·W; dW += dYᵀ·X (the shapes of SD's linear layers, scaled down).
        const int rows = 96, inF = 40, outF = 72;
        Verify(new GemmShape(rows, outF, inF, TransB: true), bias: true);
        Verify(new GemmShape(rows, inF, outF));
        Verify(new GemmShape(outF, inF, rows, TransA: true, Beta: 1));
    }

    // Block-crossing sizes of both tiers for the f16/bf16 packing and slab-loading paths (rows, columns, depth slabs);
    // the host-scale ones cross the Cpu tier's column and row blocks.
    static readonly int[][] HalfSizes = [[1, 1, 1], [17, 1, 33], [7, 65, 257], [65, 66, 33]];
    static readonly int[][] HalfHostSizes = [[70, 130, 600], [1100, 9, 5], [150, 300, 100]];

    public static IEnumerable<TestCaseData> HalfCases() =>
        from inputs in new[] { DType.F16, DType.BF16 }
        from mnk in HalfSizes.Concat(HalfHostSizes)
        from transA in Bools
        from transB in Bools
        select HostScaleIf(HalfHostSizes.Contains(mnk), new TestCaseData(inputs, mnk, transA, transB));

    [TestCaseSource(nameof(HalfCases))]
    public void HalfInputsAccumulateInF32(DType inputs, int[] mnk, bool transA, bool transB) =>
        Verify(new GemmShape(mnk[0], mnk[1], mnk[2], transA, transB), inputs: inputs);

    [Test]
    public void HalfInputsWithAlphaBetaBiasBatchesAndSplitDepth([Values(DType.F16, DType.BF16)] DType inputs)
    {
        Verify(new GemmShape(130, 140, 300, TransA: true, TransB: true, Alpha: 0.5f, Beta: -1.5f), bias: true, inputs: inputs);
        Verify(new GemmShape(5, 7, 9, Batch: 3, StrideA: 5 * 9 + 4, StrideB: 0, StrideC: 5 * 7 + 3), bias: true, inputs: inputs);
        Verify(new GemmShape(6, 65, 30, TransA: true, Batch: 5, StrideA: 0, StrideC: 6 * 65 + 1), inputs: inputs);
        Verify(new GemmShape(8, 70, 12, Beta: 1, Batch: 5, StrideC: 0), inputs: inputs);
        Verify(new GemmShape(37, 20, 3001, TransA: true, Alpha: 2f), nanC: true, inputs: inputs);   // the Cpu tier splits the depth
    }

    [Test]
    public void HalfInputsWidenExactly([Values(DType.F16, DType.BF16)] DType inputs, [Values] bool transA, [Values] bool transB)
    {
        // C = I·op(B) over random finite bit patterns (subnormals, the largest values, both signs): each element of C is
        // one product by 1 plus products by 0, so it must equal the widened element of op(B) bit for bit.
        const int n = 40;   // a row of B spans two 16-lane conversions and a scalar tail on the Cpu tier
        var rng = new Random(7);
        ushort maxExponent = inputs == DType.F16 ? (ushort)0x7C00 : (ushort)0x7F80;
        var bits = new ushort[n * n];
        for (int i = 0; i < bits.Length; i++)
            do bits[i] = (ushort)rng.Next(0x10000); while ((bits[i] & maxExponent) == maxExponent);   // no Inf/NaN
        double[] b = bits.Select(h => (double)(inputs == DType.F16 ? HalfPrecision.HalfToFloat(h) : HalfPrecision.BFloat16ToFloat(h))).ToArray();
        double[] identity = new double[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1;
        var c = Zeros(n * n);
        Backend.Gemm(c, Input(identity, inputs), Input(b, inputs), null, new GemmShape(n, n, n, transA, transB));
        var expected = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) expected[i * n + j] = transB ? b[j * n + i] : b[i * n + j];
        Assert.That(Read(c), Is.EqualTo(expected.Select(v => (float)v).ToArray()), $"{inputs.Name()} transA={transA} transB={transB}");
    }

    [Test]
    public void BadArguments()
    {
        var a = Zeros(12);
        var b = Zeros(12);
        var c = Zeros(9);
        var s = new GemmShape(3, 3, 4);
        Assert.That(() => Backend.Gemm(c, Zeros(11), b, null, s), Throws.ArgumentException.With.Message.Contains("gemm: A"));
        Assert.That(() => Backend.Gemm(c, a, b, Zeros(4), s), Throws.ArgumentException.With.Message.Contains("gemm: bias"));
        Assert.That(() => Backend.Gemm(Zeros(9, DType.I32), a, b, null, s), Throws.ArgumentException.With.Message.Contains("gemm: C"));
        Assert.That(() => Backend.Gemm(c, a, b, null, s with { K = 0 }), Throws.ArgumentException.With.Message.Contains("gemm: K"));
        Assert.That(() => Backend.Gemm(c, a, b, null, s with { Batch = 2, StrideB = 0 }), Throws.ArgumentException.With.Message.Contains("gemm: A"));
        // A and B share one of f32, f16, bf16; C stays f32.
        const string mixed = "A and B must both be f32, both f16 or both bf16";
        Assert.That(() => Backend.Gemm(c, Zeros(12, DType.F16), Zeros(12, DType.BF16), null, s),
            Throws.ArgumentException.With.Message.Contains("gemm: A is f16[12] and B is bf16[12]").And.Message.Contains(mixed));
        Assert.That(() => Backend.Gemm(c, Zeros(12, DType.F16), b, null, s), Throws.ArgumentException.With.Message.Contains(mixed));
        Assert.That(() => Backend.Gemm(c, Zeros(12, DType.I32), Zeros(12, DType.I32), null, s), Throws.ArgumentException.With.Message.Contains(mixed));
        Assert.That(() => Backend.Gemm(c, Zeros(11, DType.BF16), Zeros(12, DType.BF16), null, s),
            Throws.ArgumentException.With.Message.Contains("gemm: A is bf16[11], expected bf16 with at least 12"));
        Assert.That(() => Backend.Gemm(Zeros(9, DType.F16), Zeros(12, DType.F16), Zeros(12, DType.F16), null, s),
            Throws.ArgumentException.With.Message.Contains("gemm: C"));
    }
}

[TestFixture]
public class GemmGradChecks
{
    [Test]
    public void GradientsOfBothInputsAndBias([Values] bool transA, [Values] bool transB)
    {
        // Two batches sharing B (stride 0): its gradient is the sum over the batch.
        var s = new GemmShape(3, 4, 5, transA, transB, Alpha: 0.7f, Batch: 2, StrideB: 0);
        double[][] inputs = [TestData.Uniform(1, 2 * 3 * 5), TestData.Uniform(2, 5 * 4), TestData.Uniform(3, 4)];
        GradCheck.Check(inputs,
            x =>
            {
                var c = new double[2 * 3 * 4];
                GemmReference.Gemm(c, x[0], x[1], x[2], s);
                return c;
            },
            (x, dc) =>
            {
                double[] da = new double[x[0].Length], db = new double[x[1].Length], dbias = new double[4];
                GemmReference.GemmBackward(da, db, dbias, dc, x[0], x[1], s);
                return [da, db, dbias];
            },
            $"gemm transA={transA} transB={transB}");
    }
}
