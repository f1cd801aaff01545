// Finite-difference checks of every op's backward wiring on the reference backend, and the ops' shape errors.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

public class OpGradChecks
{
    static readonly IBackend Reference = Backends.Create("reference");
    static (float[], int[]) In(int seed, params int[] shape) => TensorGradCheck.Input(seed, 1.0, shape);
    /// <summary>Values in [1 − 0.5, 1 + 0.5): norm scales away from zero, like trained ones.</summary>
    static (float[], int[]) Gamma(int seed, int n) => (In(seed, n).Item1.Select(v => 1f + 0.5f * v).ToArray(), [n]);

    [TestCase(1, 0)]
    [TestCase(2, 1)]
    public void Conv2d(int stride, int padding) => TensorGradCheck.Check(Reference,
        t => F.Conv2d(t[0], t[1], t[2], stride, padding),
        [In(1, 2, 3, 5, 4), In(2, 4, 3, 3, 3), In(3, 4)], $"conv2d stride {stride} padding {padding}");

    [Test] public void Conv2dWithoutBias() => TensorGradCheck.Check(Reference, t => F.Conv2d(t[0], t[1], null, 2, 1),
        [In(4, 1, 2, 4, 4), In(5, 3, 2, 3, 3)], "conv2d without bias");

    [Test] public void GroupNormSeveralGroups() => TensorGradCheck.Check(Reference, t => F.GroupNorm(t[0], 3, t[1], t[2], 1e-5f),
        [In(1, 2, 6, 2, 3), Gamma(2, 6), In(3, 6)], "group norm, 3 groups of 2 channels");

    [Test] public void GroupNormSilu() => TensorGradCheck.Check(Reference, t => F.GroupNorm(t[0], 2, t[1], t[2], 1e-5f, silu: true),
        [In(1, 2, 4, 3, 2), Gamma(2, 4), In(3, 4)], "group norm fused with silu, 2 groups of 2 channels");

    [Test] public void LayerNorm() => TensorGradCheck.Check(Reference, t => F.LayerNorm(t[0], t[1], t[2], 1e-5f),
        [In(1, 2, 3, 7), Gamma(2, 7), In(3, 7)], "layer norm");

    [Test] public void Softmax() => TensorGradCheck.Check(Reference, t => F.Softmax(t[0]), [In(1, 3, 2, 5)], "softmax");

    [TestCase(false, 3, 5)]
    [TestCase(true, 4, 3)]
    public void Attention(bool causal, int lq, int lk) => TensorGradCheck.Check(Reference,
        t => F.Attention(t[0], t[1], t[2], heads: 2, causal),
        [In(1, 2, lq, 6), In(2, 2, lk, 6), In(3, 2, lk, 6)], $"attention causal={causal} Lq={lq} Lk={lk}");

    [Test] public void SelfAttentionOnOneTensorGetsAllThreeGradients() => TensorGradCheck.Check(Reference,
        t => F.Attention(t[0], t[0], t[0], heads: 1), [In(4, 1, 4, 3)], "attention with q = k = v");

    [TestCase(UnaryOp.Silu)]
    [TestCase(UnaryOp.Gelu)]
    [TestCase(UnaryOp.GeluTanh)]
    [TestCase(UnaryOp.QuickGelu)]
    public void Activation(UnaryOp op) => TensorGradCheck.Check(Reference, t => F.Unary(op, t[0]),
        [TensorGradCheck.Input(1, 3.0, 3, 7)], op.ToString());

    [Test] public void Geglu() => TensorGradCheck.Check(Reference, t => F.Geglu(t[0]),
        [TensorGradCheck.Input(1, 2.0, 2, 3, 8)], "geglu");

    [Test] public void EmbeddingWithRepeatedIds() => TensorGradCheck.Check(Reference,
        t => F.Embedding(Tensor.FromInts(Reference, [3, 0, 3, 1, 3, 4], 2, 3), t[0]), [In(1, 5, 4)], "embedding");

    [Test] public void UpsampleNearest2x() => TensorGradCheck.Check(Reference, t => F.UpsampleNearest2x(t[0]),
        [In(1, 2, 2, 3, 2)], "upsample");

    [TestCase(0, 1, 0, 1)]
    [TestCase(2, 1, 1, 3)]
    public void Pad2d(int left, int right, int top, int bottom) => TensorGradCheck.Check(Reference,
        t => F.Pad2d(t[0], left, right, top, bottom), [In(1, 2, 2, 3, 4)], $"pad2d ({left}, {right}, {top}, {bottom})");

    [Test] public void ConcatOnAMiddleAxis() => TensorGradCheck.Check(Reference, t => F.Concat(t[0], t[1], 1),
        [In(1, 2, 3, 4), In(2, 2, 2, 4)], "concat axis 1");

    [Test] public void NarrowOnAMiddleAxis() => TensorGradCheck.Check(Reference, t => F.Narrow(t[0], -2, 1, 2),
        [In(1, 2, 4, 3)], "narrow axis 1");

    [Test] public void NarrowViewOnTheLeadingAxis() => TensorGradCheck.Check(Reference,
        t => F.Narrow(t[0], 0, 1, 2), [In(1, 4, 3)], "narrow axis 0 (a view)");

    [Test] public void Chunk2OnTheLeadingAxisViewsBothReceiveGradients() => TensorGradCheck.Check(Reference,
        t => { var (a, b) = F.Chunk2(t[0], 0); return F.Mul(a, b); }, [In(1, 4, 2, 3)], "chunk2 axis 0 (views)");

    [Test]
    public void NarrowAfterOnlySizeOneAxesSharesTheBufferAndRecordsItsBackward()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var x = Tensor.FromArray(backend, Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), 1, 4, 6);   // (1, 4, 6)
        x.RequiresGrad = true;
        long before = backend.Memory.CurrentBytes;
        var y = F.Narrow(x, 1, 1, 2);                     // rows 1 and 2: elements [6, 18) of x's buffer
        var (first, second) = F.Chunk2(x, -2);
        Assert.That(backend.Memory.CurrentBytes, Is.EqualTo(before), "narrow and chunk2 allocate nothing");
        Assert.That(y.Shape.ToArray(), Is.EqualTo(new[] { 1, 2, 6 }));
        Assert.That(y.ToArray(), Is.EqualTo(Enumerable.Range(6, 12).Select(i => (float)i)));
        backend.Upload<float>(x.Storage.Slice(6, 1), [-1f]);
        Assert.That(y.ToArray()[0], Is.EqualTo(-1f), "a write into x shows through the view");
        Assert.That(second.ToArray()[0], Is.EqualTo(12f));

        // L = Σ 2·y + Σ 3·second: rows 1 and 2 get 2, rows 2 and 3 get 3, row 0 nothing.
        F.Sum(F.Add(F.Sum(F.Scale(y, 2f)), F.Sum(F.Scale(second, 3f)))).Backward();
        float[] expected = [.. Enumerable.Repeat(0f, 6), .. Enumerable.Repeat(2f, 6), .. Enumerable.Repeat(5f, 6), .. Enumerable.Repeat(3f, 6)];
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(expected));
        Assert.That(first.RequiresGrad, Is.True);
    }

    [Test]
    public void NarrowInsideAnOuterAxisCopies()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var x = Tensor.Zeros(backend, 2, 4, 6);
        long before = backend.Memory.CurrentBytes;
        F.Narrow(x, 1, 1, 2);                             // rows 1-2 of both outer slices: not one run of the buffer
        Assert.That(backend.Memory.CurrentBytes - before, Is.EqualTo(2 * 2 * 6 * sizeof(float)));
    }

    [Test] public void Chunk2HalvesBothReceiveGradients() => TensorGradCheck.Check(Reference,
        t => { var (a, b) = F.Chunk2(t[0], 1); return F.Mul(a, b); }, [In(1, 2, 6, 3)], "chunk2 axis 1");

    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void CastRoundTrip(DType dtype)
    {
        // Multiples of 1/64 in [-1, 1], and a step of 1/64: every perturbed value is exact in f16 and bf16, so the
        // round trip is the identity and the finite differences are exact.
        var values = Enumerable.Range(0, 12).Select(i => (i * 37 % 128 - 64) / 64f).ToArray();
        TensorGradCheck.Check(Reference, t => F.Cast(F.Cast(t[0], dtype), DType.F32), [(values, [3, 4])],
            $"cast f32 -> {dtype.Name()} -> f32", h: 1.0 / 64);
    }

    [Test]
    public void CastGradientHasTheInputsDtype()
    {
        using var scope = new TensorScope();
        var x = F.Cast(Tensor.FromArray(Reference, [1f, 2f], 2), DType.BF16);
        x.RequiresGrad = true;
        F.Sum(F.Cast(x, DType.F32)).Backward();
        Assert.That(x.Grad!.DType, Is.EqualTo(DType.BF16));
        Assert.That(x.Grad.ToArray(), Is.EqualTo(new[] { 1f, 1f }));
    }

    [TestCase(4, false, 0f)]     // diffusers' defaults
    [TestCase(5, true, 1f)]      // SD's UNet flips to [cos, sin]; an odd dim gets a zero column
    public void TimestepEmbeddingFollowsTheFormula(int dim, bool flip, float shift)
    {
        using var scope = new TensorScope();
        float[] t = [0f, 1f, 999f];
        var e = F.TimestepEmbedding(Reference, t, dim, flip, shift, scale: 2f).ToArray();
        int half = dim / 2;
        for (int n = 0; n < t.Length; n++)
            for (int i = 0; i < half; i++)
            {
                double a = 2.0 * t[n] * Math.Exp(-Math.Log(10000) * i / (half - shift));
                double first = flip ? Math.Cos(a) : Math.Sin(a), second = flip ? Math.Sin(a) : Math.Cos(a);
                // f32 arguments up to ~2000 carry ~1e-4 absolute rounding (the original computes in f32 as well)
                const double ArgumentRounding = 3e-4;
                Assert.That(e[n * dim + i], Is.EqualTo(first).Within(ArgumentRounding), $"t={t[n]} column {i}");
                Assert.That(e[n * dim + half + i], Is.EqualTo(second).Within(ArgumentRounding), $"t={t[n]} column {half + i}");
            }
        if (dim % 2 == 1)
            for (int n = 0; n < t.Length; n++) Assert.That(e[n * dim + dim - 1], Is.Zero);
    }
}

public class OpShapeErrors
{
    static readonly IBackend Reference = Backends.Create("reference");

    static void Throws(string op, TestDelegate call, params string[] mentions)
    {
        using var scope = new TensorScope();
        var e = Assert.Throws<ArgumentException>(call);
        Assert.That(e!.Message, Does.StartWith(op + ":"));
        foreach (var m in mentions) Assert.That(e.Message, Does.Contain(m));
    }

    static Tensor Z(params int[] shape) => Tensor.Zeros(Reference, shape);

    [Test] public void LinearWeightMustBeAMatrix() =>
        Throws("linear", () => F.Linear(Z(2, 4), Z(4)), "[2, 4]", "[4]");

    [Test] public void ConvChannelsMustMatch() =>
        Throws("conv2d", () => F.Conv2d(Z(1, 3, 8, 8), Z(4, 2, 3, 3), null), "[1, 3, 8, 8]", "[4, 2, 3, 3]");

    [Test] public void ConvKernelLargerThanThePaddedInput() =>
        Throws("conv2d", () => F.Conv2d(Z(1, 1, 2, 2), Z(1, 1, 3, 3), null), "kernel larger than padded input", "pad 0");

    [Test] public void GroupNormChannelsMustDivideIntoGroups() =>
        Throws("group norm", () => F.GroupNorm(Z(1, 6, 4), 4, Z(6), Z(6), 1e-5f), "4 groups", "[1, 6, 4]");

    [Test] public void LayerNormGammaMustMatchTheLastAxis() =>
        Throws("layer norm", () => F.LayerNorm(Z(2, 5), Z(4), Z(5), 1e-5f), "[2, 5]", "[4]");

    [Test] public void AttentionHeadsMustDivideTheWidth() =>
        Throws("attention", () => F.Attention(Z(1, 2, 6), Z(1, 3, 6), Z(1, 3, 6), heads: 4), "4 heads");

    [Test] public void AttentionKeysAndValuesMustMatch() =>
        Throws("attention", () => F.Attention(Z(1, 2, 6), Z(1, 3, 6), Z(1, 4, 6), heads: 2), "[1, 3, 6]", "[1, 4, 6]");

    [Test] public void ConcatSizesOffTheAxisMustMatch() =>
        Throws("concat", () => F.Concat(Z(2, 3, 4), Z(2, 3, 5), 1), "[2, 3, 4]", "[2, 3, 5]", "axis 1");

    [Test] public void NarrowRangeMustLieInsideTheAxis() =>
        Throws("narrow", () => F.Narrow(Z(2, 3), 1, 2, 2), "[2, 4)", "[2, 3]");

    [Test] public void Chunk2NeedsAnEvenAxis() => Throws("chunk2", () => F.Chunk2(Z(2, 3), -1), "[2, 3]");

    [Test] public void GegluNeedsAnEvenLastAxis() => Throws("geglu", () => F.Geglu(Z(2, 3)), "[2, 3]");

    [Test] public void EmbeddingIdsMustBeIntegers() =>
        Throws("embedding", () => F.Embedding(Z(3), Z(5, 2)), "f32[3]");

    [Test] public void SumAxesMustExist() => Throws("sum", () => F.Sum(Z(2, 3), 2), "axis 2", "[2, 3]");

    [Test] public void MeanAxesMustExist() => Throws("mean", () => F.Mean(Z(2, 3), -3), "axis -3", "[2, 3]");

    [Test] public void PadMustBeNonNegative() => Throws("pad2d", () => F.Pad2d(Z(1, 1, 2, 2), 0, -1, 0, 0), "-1");
}
