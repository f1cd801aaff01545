// Fill, Copy and StridedCopy on every backend: all dtypes, transposes, permutes, broadcasts, offsets and bad layouts.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class CopyTests(string backend) : BackendTest(backend)
{
    // Data movement copies bits, so every comparison is exact.

    DeviceBuffer Raw<T>(DType dtype, T[] values) where T : unmanaged
    {
        var b = Zeros((long)values.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>() / dtype.Size(), dtype);
        Backend.Upload<T>(b, values);
        return b;
    }

    T[] ReadRaw<T>(DeviceBuffer b) where T : unmanaged
    {
        var result = new T[b.Bytes / System.Runtime.CompilerServices.Unsafe.SizeOf<T>()];
        Backend.Download<T>(result, b);
        return result;
    }

    static uint[] Bits(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (uint)rng.NextInt64(0, 1L << 32)).ToArray();
    }

    [TestCase(DType.F32, 1.25f, 0x3FA00000u)]
    [TestCase(DType.F16, 1.25f, 0x3D00u)]
    [TestCase(DType.F16, 0.1f, 0x2E66u)]            // 0.1 → nearest half 0.0999755859375
    [TestCase(DType.F16, 1e6f, 0x7C00u)]            // overflow → Inf
    [TestCase(DType.BF16, 1.25f, 0x3FA0u)]
    [TestCase(DType.BF16, 0.1f, 0x3DCDu)]           // 0x3DCCCCCD rounds up
    [TestCase(DType.I32, 3.7f, 3u)]                 // truncation toward zero
    [TestCase(DType.I32, -3.7f, 0xFFFFFFFDu)]       // -3
    public void FillWritesTheDTypeBits(DType dtype, float value, uint expected)
    {
        Assert.That(HalfPrecision.FillBits(dtype, value), Is.EqualTo(expected));
        foreach (int n in new[] { 1, 17, 3001 })
        {
            var y = Zeros(n, dtype);
            Backend.Fill(y, value);
            if (dtype.Size() == 4) Assert.That(ReadRaw<uint>(y), Is.All.EqualTo(expected), $"n={n}");
            else Assert.That(ReadRaw<ushort>(y), Is.All.EqualTo((ushort)expected), $"n={n}");
        }
    }

    [Test, Category(HostScale)]   // the cpu tier's split over cores; FillWritesTheDTypeBits launches the CUDA kernel
    public void FillLargeF32()
    {
        var y = Zeros(1_000_003);
        Backend.Fill(y, -2.5f);
        Assert.That(Read(y), Is.All.EqualTo(-2.5f));
    }

    [TestCase(DType.F32, 1)]
    [TestCase(DType.F32, 1001)]
    [TestCase(DType.F32, 700_001)]                  // large enough to split over cores
    [TestCase(DType.F16, 333)]
    [TestCase(DType.I32, 65)]
    public void CopyIsExact(DType dtype, int n)
    {
        var bits = Bits(n * dtype.Size() / 2, 3).Select(b => (ushort)b).ToArray();
        var src = Raw<ushort>(dtype, bits);
        var dst = Zeros(n, dtype);
        Backend.Copy(dst, src);
        Assert.That(ReadRaw<ushort>(dst), Is.EqualTo(bits));
    }

    [Test]
    public void CopyBetweenOverlappingSlicesActsAsMemmove()
    {
        var values = Enumerable.Range(0, 100).Select(i => (float)i).ToArray();
        var b = Buf(values);
        Backend.Copy(b.Slice(10, 50), b.Slice(0, 50));
        var expected = (float[])values.Clone();
        Array.Copy(values, 0, expected, 10, 50);
        Assert.That(Read(b), Is.EqualTo(expected));
    }

    [Test]
    public void CopyBetweenSlicesOfHalfs()
    {
        // Slices of 2-byte elements start at odd element offsets: bytes 2 and 6 of their buffers.
        var bits = Bits(12, 4).Select(b => (ushort)b).ToArray();
        var dst = Zeros(12, DType.F16);
        Backend.Copy(dst.Slice(3, 5), Raw<ushort>(DType.F16, bits).Slice(1, 5));
        var expected = new ushort[12];
        Array.Copy(bits, 1, expected, 3, 5);
        Assert.That(ReadRaw<ushort>(dst), Is.EqualTo(expected));
    }

    /// <summary>Runs StridedCopy on float data and compares with both the reference and an independent expectation.</summary>
    void CheckStrided(float[] src, int[] shape, long[] strides, long offset, Func<int[], float> expectedAt)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        var dst = Zeros(n);
        Backend.StridedCopy(dst, Buf(src), shape, strides, offset);
        var actual = Read(dst);

        var reference = new float[n];
        CopyReference.StridedCopy<float>(reference, src, shape, strides, offset);
        Assert.That(actual, Is.EqualTo(reference), "vs reference");

        var expected = new float[n];
        var idx = new int[shape.Length];
        for (long i = 0; i < n; i++)
        {
            expected[i] = expectedAt(idx);
            for (int d = shape.Length - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;
        }
        Assert.That(actual, Is.EqualTo(expected), "vs index arithmetic");
    }

    [TestCase(37, 19)]
    [TestCase(1, 5)]
    [TestCase(300, 257)]
    public void TransposeTwoD(int rows, int cols)
    {
        // src (rows, cols) row-major; dst (cols, rows) = srcᵀ: dst[c, r] = src[r, c], strides (1, cols).
        var src = TestData.ToFloat(TestData.Uniform(1, rows * cols));
        CheckStrided(src, [cols, rows], [1, cols], 0, i => src[i[1] * cols + i[0]]);
    }

    [TestCase(2, 5, 3, 16)]
    [TestCase(1, 77, 8, 7)]
    [TestCase(3, 1, 4, 1)]
    public void PermuteAttentionHeads(int b, int l, int h, int d)
    {
        // src (B, L, H, D) → dst (B, H, L, D): permute (0, 2, 1, 3).
        var src = TestData.ToFloat(TestData.Uniform(2, b * l * h * d));
        long[] srcStrides = [(long)l * h * d, d, (long)h * d, 1];   // strides of (B, H, L, D) read from (B, L, H, D)
        CheckStrided(src, [b, h, l, d], srcStrides, 0, i => src[((i[0] * l + i[2]) * h + i[1]) * d + i[3]]);
    }

    [TestCase(3, 37, 50, 0)]
    [TestCase(2, 320, 64, 5)]
    public void ChannelsLastPermute(int b, int c, int hw, int offset)
    {
        // src (B, C, HW) → dst (B, HW, C): a batched transpose (the tiled path), starting `offset` elements in.
        var src = TestData.ToFloat(TestData.Uniform(5, offset + b * c * hw));
        CheckStrided(src, [b, hw, c], [(long)c * hw, 1, hw], offset, i => src[offset + (i[0] * c + i[2]) * hw + i[1]]);
    }

    [Test]
    public void BroadcastWithZeroStrides()
    {
        // A bias (C) broadcast to (N, C, HW): strides (0, 1, 0); and a row broadcast along the last axis.
        var bias = new float[] { 1, 2, 3, 4, 5 };
        CheckStrided(bias, [3, 5, 7], [0, 1, 0], 0, i => bias[i[1]]);
        CheckStrided(bias, [4, 33], [1, 0], 1, i => bias[1 + i[0]]);
    }

    [Test]
    public void SliceViewWithOffset()
    {
        // The window [2:6, 3:10] of a (9, 12) matrix: offset 2·12 + 3, strides (12, 1).
        var src = TestData.ToFloat(TestData.Uniform(3, 9 * 12));
        CheckStrided(src, [4, 7], [12, 1], 27, i => src[(2 + i[0]) * 12 + 3 + i[1]]);
        // Every other column of rows 1..: strides (12, 2).
        CheckStrided(src, [8, 6], [12, 2], 12, i => src[(1 + i[0]) * 12 + 2 * i[1]]);
    }

    [Test]
    public void SixDimensionGatherWithGapsAndASizeOneAxis()
    {
        // The most axes a strided copy takes (the CUDA kernel unrolls six), strides that skip elements, and an offset.
        var src = TestData.ToFloat(TestData.Uniform(6, 400));
        CheckStrided(src, [2, 2, 3, 1, 2, 2], [150, 60, 17, 5, 4, 1], 1,
            i => src[1 + i[0] * 150 + i[1] * 60 + i[2] * 17 + i[3] * 5 + i[4] * 4 + i[5]]);
        CheckStrided(src, [3, 1, 4], [4, 100, 1], 0, i => src[i[0] * 4 + i[1] * 100 + i[2]]);
    }

    [Test]
    public void LargeFourDPermuteSplitsOverCores()
    {
        var src = TestData.ToFloat(TestData.Uniform(4, 2 * 256 * 8 * 40));
        CheckStrided(src, [2, 8, 256, 40], [256L * 8 * 40, 40, 8 * 40, 1], 0, i => src[((i[0] * 256 + i[2]) * 8 + i[1]) * 40 + i[3]]);
        CheckStrided(src, [2 * 256 * 8, 40], [1, 2 * 256 * 8], 0, i => src[i[1] * 2 * 256 * 8 + i[0]]);
    }

    [Test]
    public void StridedCopyOfHalfs()
    {
        var bits = Bits(6 * 4, 5).Select(b => (ushort)b).ToArray();
        var dst = Zeros(24, DType.F16);
        Backend.StridedCopy(dst, Raw<ushort>(DType.F16, bits), [4, 6], [1, 4], 0);
        var expected = new ushort[24];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 6; c++) expected[r * 6 + c] = bits[c * 4 + r];
        Assert.That(ReadRaw<ushort>(dst), Is.EqualTo(expected));
    }

    [Test]
    public void TransposeMovesFourByteBitsUnchanged()
    {
        // (37, 35) → (35, 37): whole register blocks and edges of the tiled transpose. Ints, signalling NaNs and
        // subnormal patterns must move bit for bit, as no arithmetic may touch them.
        uint[] special = [0x7F800001u, 0xFF800001u, 0x00000001u, 0x80000003u, 0x7FC12345u, 0xFFFFFFFFu];
        var bits = Bits(37 * 35, 9).Select((b, i) => i % 7 == 0 ? special[i / 7 % special.Length] : b).ToArray();
        var dst = Zeros(37 * 35, DType.I32);
        Backend.StridedCopy(dst, Raw<uint>(DType.I32, bits), [35, 37], [1, 35], 0);
        var expected = new uint[37 * 35];
        for (int r = 0; r < 35; r++)
            for (int c = 0; c < 37; c++) expected[r * 37 + c] = bits[c * 35 + r];
        Assert.That(ReadRaw<uint>(dst), Is.EqualTo(expected));
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        var src = Zeros(12);
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.Copy(Zeros(11), src), Throws.ArgumentException.With.Message.Contains("copy"));
            Assert.That(() => Backend.Copy(Zeros(12, DType.I32), src), Throws.ArgumentException.With.Message.Contains("copy"));
            // Reaches element 3·4 + 2·1 = 14 of 12.
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [4, 1], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [3, 1], 1),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [-3, 1], 11),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [3], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [3, 1], -1),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12), src, [4, 3], [long.MaxValue / 2, 1], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(10), src, [4, 3], [3, 1], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(12, DType.F16), src, [4, 3], [3, 1], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
            Assert.That(() => Backend.StridedCopy(Zeros(0), src, [4, 0], [3, 1], 0),
                Throws.ArgumentException.With.Message.Contains("strided copy"));
        });
    }
}
