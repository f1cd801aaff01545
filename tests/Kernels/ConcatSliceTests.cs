// Concat, Slice and SliceBackward on every backend against the reference, any dtype, plus finite-difference checks.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class ConcatSliceTests(string backend) : BackendTest(backend)
{
    // Pure data movement: results must match exactly (tolerance 0).
    const double Exact = 0;

    [TestCase(1, 3, 5, 7)]
    [TestCase(4, 2, 3, 1)]
    [TestCase(3, 17, 1, 33)]
    [TestCase(2, 77, 77, 768)]          // CLIP-sized rows: splits over cores
    [TestCase(1, 1, 1, 1)]
    public void ConcatMatchesReference(int outer, int aAxis, int bAxis, int inner)
    {
        double[] a = TestData.Uniform(1, outer * aAxis * inner), b = TestData.Uniform(2, outer * bAxis * inner);
        var expected = new double[outer * (aAxis + bAxis) * inner];
        ConcatSliceReference.Concat<double>(expected, a, b, outer, aAxis, bAxis, inner);
        var y = Zeros(expected.Length);
        Backend.Concat(y, Buf(a), Buf(b), outer, aAxis, bAxis, inner);
        Close.Assert(Read(y), expected, Exact, Exact, "concat");
        // Independent check of one element: y[o, aAxis + k, i] = b[o, k, i] for the last of each.
        Assert.That(Read(y)[^1], Is.EqualTo((float)b[^1]));
    }

    [TestCase(1, 10, 0, 10, 3)]
    [TestCase(4, 9, 2, 5, 1)]
    [TestCase(3, 17, 16, 1, 33)]
    [TestCase(2, 154, 77, 77, 768)]
    public void SliceAndBackwardMatchReference(int outer, int xAxis, int start, int yAxis, int inner)
    {
        double[] x = TestData.Uniform(3, outer * xAxis * inner), dy = TestData.Uniform(4, outer * yAxis * inner);
        var expectedY = new double[dy.Length];
        ConcatSliceReference.Slice<double>(expectedY, x, outer, xAxis, start, yAxis, inner);
        var y = Zeros(dy.Length);
        Backend.Slice(y, Buf(x), outer, xAxis, start, yAxis, inner);
        Close.Assert(Read(y), expectedY, Exact, Exact, "slice");
        Assert.That(Read(y)[0], Is.EqualTo((float)x[start * inner]));

        var expectedDx = new double[x.Length];
        ConcatSliceReference.SliceBackward<double>(expectedDx, dy, outer, xAxis, start, yAxis, inner);
        var dx = Buf(x);                          // stale contents: the backward must overwrite every element
        Backend.SliceBackward(dx, Buf(dy), outer, xAxis, start, yAxis, inner);
        Close.Assert(Read(dx), expectedDx, Exact, Exact, "slice backward");
    }

    [Test]
    public void ConcatAndSliceAnyDType()
    {
        ushort[] a = [1, 2, 3, 4, 5, 6], b = [7, 8];
        var pa = Zeros(6, DType.BF16);
        var pb = Zeros(2, DType.BF16);
        Backend.Upload<ushort>(pa, a);
        Backend.Upload<ushort>(pb, b);
        var y = Zeros(8, DType.BF16);
        Backend.Concat(y, pa, pb, 2, 3, 1, 1);           // (2, 3, 1) ++ (2, 1, 1)
        var got = new ushort[8];
        Backend.Download<ushort>(got, y);
        Assert.That(got, Is.EqualTo(new ushort[] { 1, 2, 3, 7, 4, 5, 6, 8 }));

        var s = Zeros(4, DType.BF16);
        Backend.Slice(s, y, 2, 4, 1, 2, 1);
        var sliced = new ushort[4];
        Backend.Download<ushort>(sliced, s);
        Assert.That(sliced, Is.EqualTo(new ushort[] { 2, 3, 5, 6 }));

        var ids = Ints([10, 20, 30, 40, 50, 60]);
        var pair = Zeros(2, DType.I32);
        Backend.Slice(pair, ids, 1, 6, 4, 2, 1);
        var ints = new int[2];
        Backend.Download<int>(ints, pair);
        Assert.That(ints, Is.EqualTo(new[] { 50, 60 }));

        // Slice backward of 2-byte elements: the slice's rows go back in place, stale values elsewhere become 0.
        var dx = Zeros(8, DType.BF16);
        Backend.Fill(dx, 5f);
        Backend.SliceBackward(dx, s, 2, 4, 1, 2, 1);
        var back = new ushort[8];
        Backend.Download<ushort>(back, dx);
        Assert.That(back, Is.EqualTo(new ushort[] { 0, 2, 3, 0, 0, 5, 6, 0 }));
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.Concat(Zeros(9), Zeros(4), Zeros(4), 2, 2, 2, 1),
                Throws.ArgumentException.With.Message.Contains("concat"));
            Assert.That(() => Backend.Concat(Zeros(8), Zeros(4), Zeros(4, DType.F16), 2, 2, 2, 1),
                Throws.ArgumentException.With.Message.Contains("concat"));
            Assert.That(() => Backend.Concat(Zeros(8), Zeros(4), Zeros(4), 2, 2, 2, 0),
                Throws.ArgumentException.With.Message.Contains("concat"));
            Assert.That(() => Backend.Slice(Zeros(4), Zeros(10), 2, 5, 4, 2, 1),
                Throws.ArgumentException.With.Message.Contains("slice"));
            Assert.That(() => Backend.Slice(Zeros(4), Zeros(10), 2, 5, -1, 2, 1),
                Throws.ArgumentException.With.Message.Contains("slice"));
            Assert.That(() => Backend.Slice(Zeros(4, DType.F16), Zeros(10), 2, 5, 0, 2, 1),
                Throws.ArgumentException.With.Message.Contains("slice"));
            Assert.That(() => Backend.SliceBackward(Zeros(10), Zeros(5), 2, 5, 0, 2, 1),
                Throws.ArgumentException.With.Message.Contains("slice backward"));
        });
    }
}

[TestFixture]
public class ConcatSliceGradChecks
{
    [Test]
    public void SliceBackward()
    {
        const int outer = 2, xAxis = 5, start = 1, yAxis = 3, inner = 2;
        GradCheck.Check([TestData.Uniform(1, outer * xAxis * inner)],
            x =>
            {
                var y = new double[outer * yAxis * inner];
                ConcatSliceReference.Slice<double>(y, x[0], outer, xAxis, start, yAxis, inner);
                return y;
            },
            (x, dy) =>
            {
                var dx = new double[x[0].Length];
                ConcatSliceReference.SliceBackward<double>(dx, dy, outer, xAxis, start, yAxis, inner);
                return [dx];
            }, "slice");
    }

    [Test]
    public void ConcatBackwardIsTwoSlices()
    {
        const int outer = 3, aAxis = 2, bAxis = 4, inner = 3;
        GradCheck.Check([TestData.Uniform(2, outer * aAxis * inner), TestData.Uniform(3, outer * bAxis * inner)],
            x =>
            {
                var y = new double[outer * (aAxis + bAxis) * inner];
                ConcatSliceReference.Concat<double>(y, x[0], x[1], outer, aAxis, bAxis, inner);
                return y;
            },
            (x, dy) =>
            {
                var da = new double[x[0].Length];
                var db = new double[x[1].Length];
                ConcatSliceReference.Slice<double>(da, dy, outer, aAxis + bAxis, 0, aAxis, inner);
                ConcatSliceReference.Slice<double>(db, dy, outer, aAxis + bAxis, aAxis, bAxis, inner);
                return [da, db];
            }, "concat");
    }
}
