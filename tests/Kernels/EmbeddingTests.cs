// Embedding and its scatter-add backward on every backend: duplicates, accumulation, bad ids, finite differences.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class EmbeddingTests(string backend) : BackendTest(backend)
{
    // The forward copies rows: exact.
    const double Exact = 0;
    // The backward adds each dy row into an f32 table in id order (the reference sums in double and rounds once):
    // at most ~8 duplicates here, each add rounding by 2^-24 relative to a sum of magnitude ≤ 9.
    const double BackwardAtol = 1e-6, BackwardRtol = 1e-6;

    static int[] Ids(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    [TestCase(1, 1, 1)]
    [TestCase(7, 10, 33)]
    [TestCase(77, 1000, 768)]         // a CLIP prompt against a small vocabulary
    [TestCase(3000, 50, 17)]          // many repeats of few ids
    public void ForwardMatchesReference(int count, int vocab, int dim)
    {
        double[] table = TestData.Uniform(1, vocab * dim);
        int[] ids = Ids(count, vocab, 2);
        var expected = new double[count * dim];
        EmbeddingReference.Forward(expected, table, ids, count, dim);
        var y = Zeros(expected.Length);
        Backend.Embedding(y, Buf(table), Ints(ids), count, dim);
        Close.Assert(Read(y), expected, Exact, Exact, "embedding");
        Assert.That(Read(y)[dim - 1], Is.EqualTo((float)table[ids[0] * dim + dim - 1]));
    }

    [TestCase(1, 1, 1)]
    [TestCase(7, 10, 33)]
    [TestCase(77, 1000, 768)]
    [TestCase(3000, 50, 17)]          // dozens of duplicates per id: the accumulation order matters
    [TestCase(400, 400, 2000)]        // wide rows: columns split over cores
    public void BackwardAccumulatesLikeReference(int count, int vocab, int dim)
    {
        double[] dtable = TestData.Uniform(3, vocab * dim), dy = TestData.Uniform(4, count * dim);
        int[] ids = Ids(count, vocab, 5);
        var expected = (double[])dtable.Clone();
        EmbeddingReference.Backward(expected, dy, ids, count, dim);
        var buffer = Buf(dtable);
        Backend.EmbeddingBackward(buffer, Buf(dy), Ints(ids), count, dim);
        int duplicates = count / Math.Max(1, Math.Min(vocab, count));
        Close.Assert(Read(buffer), expected, BackwardAtol * Math.Max(1, duplicates), BackwardRtol, "embedding backward");
    }

    [Test]
    public void DuplicateIdsAccumulateExactly()
    {
        // Id 2 three times, id 0 once: small integers, so the sums are exact in any order.
        int[] ids = [2, 0, 2, 2];
        var dy = Buf(new float[] { 1, 2, 10, 20, 100, 200, 1000, 2000 });
        var dtable = Buf(new float[] { 5, 5, 5, 5, 5, 5 });           // (3, 2), accumulated into
        Backend.EmbeddingBackward(dtable, dy, Ints(ids), 4, 2);
        Assert.That(Read(dtable), Is.EqualTo(new float[] { 15, 25, 5, 5, 1106, 2207 }));
    }

    [Test]
    public void BadIdsAreRejectedBeforeWriting()
    {
        var table = Buf(TestData.Uniform(1, 4 * 3));
        var y = Buf(new float[] { 9, 9, 9, 9, 9, 9 });
        var ex = Assert.Throws<ArgumentException>(() => Backend.Embedding(y, table, Ints([1, 4]), 2, 3));
        Assert.That(ex!.Message, Does.Contain("embedding").And.Contain("ids[1]").And.Contain("4"));
        Assert.That(Read(y), Is.All.EqualTo(9f), "y untouched");

        var dtable = Buf(new float[12]);
        ex = Assert.Throws<ArgumentException>(() => Backend.EmbeddingBackward(dtable, Buf(new float[6]), Ints([-1, 0]), 2, 3));
        Assert.That(ex!.Message, Does.Contain("embedding backward").And.Contain("ids[0]").And.Contain("-1"));
    }

    [Test]
    public void BadArgumentsNameTheOp()
    {
        var table = Buf(new float[12]);
        Assert.Multiple(() =>
        {
            Assert.That(() => Backend.Embedding(Zeros(6), table, Buf(new float[] { 0, 1 }), 2, 3),
                Throws.ArgumentException.With.Message.Contains("embedding"));                  // ids not i32
            Assert.That(() => Backend.Embedding(Zeros(5), table, Ints([0, 1]), 2, 3),
                Throws.ArgumentException.With.Message.Contains("embedding"));
            Assert.That(() => Backend.Embedding(Zeros(10), table, Ints([0, 1]), 2, 5),
                Throws.ArgumentException.With.Message.Contains("embedding"));                  // 12 is not (vocab, 5)
            Assert.That(() => Backend.Embedding(Zeros(0), table, Ints([]), 0, 3),
                Throws.ArgumentException.With.Message.Contains("embedding"));
            Assert.That(() => Backend.EmbeddingBackward(Zeros(12, DType.F16), Zeros(6), Ints([0, 1]), 2, 3),
                Throws.ArgumentException.With.Message.Contains("embedding backward"));
        });
    }
}

[TestFixture]
public class EmbeddingGradChecks
{
    [Test]
    public void TableGradient()
    {
        const int vocab = 5, dim = 3;
        int[] ids = [4, 1, 4, 0, 4, 2];   // repeats, and one row never used (3)
        GradCheck.Check([TestData.Uniform(1, vocab * dim)],
            x =>
            {
                var y = new double[ids.Length * dim];
                EmbeddingReference.Forward(y, x[0], ids, ids.Length, dim);
                return y;
            },
            (x, dy) =>
            {
                var dtable = new double[vocab * dim];
                EmbeddingReference.Backward(dtable, dy, ids, ids.Length, dim);
                return [dtable];
            }, "embedding");
    }
}
