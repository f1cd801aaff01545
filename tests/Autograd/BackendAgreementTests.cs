// The same forward + backward graph on the cpu and the emulated CUDA backends agrees with the reference backend.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

[TestFixture("cpu")]
[TestFixture("cuda-emulated")]
public class BackendAgreementTests(string backendName)
{
    // The reference computes in double and rounds once; the other tiers compute in f32 (the tolerances of each op's
    // kernel tests in tests/Kernels and tests/Ilgpu, at these tiny shapes). Gradients include the loss Σ w·y, whose
    // own backward (dy = w) is exact on every tier.
    const double Exact = 0;                               // data movement and casts: bit-identical by construction
    const double MoveSumAtol = 1e-6;                      // upsample / embedding backward: f32 sums of ≤ 4 values of size ≤ 1
    const double PointAtol = 1e-6, PointRtol = 1e-5;      // one f32 formula per element (exp, erf approximations)
    const double SoftmaxGradRtol = 1e-4;                  // softmax backward: one f32 dot product per row
    const double SumAtol = 1e-5, SumRtol = 1e-4;          // conv: f32 sums of ≤ 50 products in another order (cpu: Winograd)
    const double NormAtol = 3e-5, NormRtol = 3e-5;        // f32 one-pass statistics; y and dx are O(1)·x̂
    const double NormParamAtol = 1e-4;                    // dγ, dβ: f32 sums over N·HW products
    const double AttnAtol = 5e-6, AttnRtol = 3e-5;        // f32 scores and a ~2-ulp exp (the CUDA tier: ex2.approx)
    const double AttnGradAtol = 3e-5, AttnGradRtol = 3e-4;   // two more f32 products per gradient (dP, then dS·K / dSᵀ·Q)
    // The chain passes five sum-type ops forward and back, each adding its own f32 error on top of the previous ones.
    const double ChainAtol = 2e-4, ChainRtol = 1e-3;

    IBackend _backend = null!, _reference = null!;

    [OneTimeSetUp]
    public void Create()
    {
        _backend = backendName == "cuda-emulated" ? Backends.CreateEmulated() : Backends.Create(backendName);
        _reference = Backends.Create("reference");
    }

    [OneTimeTearDown]
    public void Dispose()
    {
        _backend.Dispose();
        _reference.Dispose();
    }

    static (float[], int[]) In(int seed, params int[] shape) => TensorGradCheck.Input(seed, 1.0, shape);

    /// <summary>y = f(inputs) and dL/dinput for L = Σ w·y (fixed random w), read back to the host.</summary>
    static (float[] Y, float[][] Grads) Run(IBackend backend, Func<IBackend, Tensor[], Tensor> f, (float[] Values, int[] Shape)[] inputs)
    {
        using var scope = new TensorScope();
        var leaves = inputs.Select(i => Tensor.FromArray(backend, i.Values, i.Shape)).ToArray();
        foreach (var t in leaves) t.RequiresGrad = true;
        var y = f(backend, leaves);
        var w = Tensor.FromArray(backend, TestData.ToFloat(TestData.Uniform(13, y.Length)), y.Shape.ToArray());
        F.Sum(F.Mul(F.Cast(y, DType.F32), w)).Backward();
        return (F.Cast(y, DType.F32).ToArray(), leaves.Select(l => l.Grad!.ToArray()).ToArray());
    }

    void Agree(string what, double atol, double rtol, double gradAtol, double gradRtol,
        Func<IBackend, Tensor[], Tensor> f, params (float[], int[])[] inputs)
    {
        var (y, grads) = Run(_backend, f, inputs);
        var (yRef, gradsRef) = Run(_reference, f, inputs);
        Close.Assert(y, yRef, atol, rtol, $"{what} on {backendName}: output");
        for (int i = 0; i < grads.Length; i++)
            Close.Assert(grads[i], gradsRef[i], gradAtol, gradRtol, $"{what} on {backendName}: gradient of input {i}");
    }

    void Agree(string what, double atol, double rtol, double gradAtol, double gradRtol, Func<Tensor[], Tensor> f,
        params (float[], int[])[] inputs) => Agree(what, atol, rtol, gradAtol, gradRtol, (_, t) => f(t), inputs);

    [Test] public void Conv2d() => Agree("conv2d", SumAtol, SumRtol, SumAtol, SumRtol,
        t => F.Conv2d(t[0], t[1], t[2], 2, 1), In(1, 2, 3, 5, 4), In(2, 4, 3, 3, 3), In(3, 4));

    [Test] public void Conv2dThreeByThreeStrideOne() => Agree("conv2d 3x3", SumAtol, SumRtol, SumAtol, SumRtol,
        t => F.Conv2d(t[0], t[1], t[2], 1, 1), In(1, 1, 2, 4, 4), In(2, 3, 2, 3, 3), In(3, 3));

    [TestCase(false)]
    [TestCase(true)]
    public void GroupNorm(bool silu) => Agree($"group norm silu={silu}", NormAtol, NormRtol, NormParamAtol, NormRtol,
        t => F.GroupNorm(t[0], 2, t[1], t[2], 1e-5f, silu), In(1, 2, 4, 5), In(2, 4), In(3, 4));

    [Test] public void LayerNorm() => Agree("layer norm", NormAtol, NormRtol, NormParamAtol, NormRtol,
        t => F.LayerNorm(t[0], t[1], t[2], 1e-5f), In(1, 3, 9), In(2, 9), In(3, 9));

    [Test] public void Softmax() => Agree("softmax", PointAtol, PointRtol, PointAtol, SoftmaxGradRtol,
        t => F.Softmax(t[0]), In(1, 3, 11));

    [TestCase(false, 3, 5)]
    [TestCase(true, 4, 4)]
    public void Attention(bool causal, int lq, int lk) => Agree($"attention causal={causal}", AttnAtol, AttnRtol, AttnGradAtol, AttnGradRtol,
        t => F.Attention(t[0], t[1], t[2], 2, causal), In(1, 1, lq, 8), In(2, 1, lk, 8), In(3, 1, lk, 8));

    [TestCase(UnaryOp.Silu)]
    [TestCase(UnaryOp.Gelu)]
    [TestCase(UnaryOp.GeluTanh)]
    [TestCase(UnaryOp.QuickGelu)]
    public void Activation(UnaryOp op) => Agree(op.ToString(), PointAtol, PointRtol, PointAtol, PointRtol,
        t => F.Unary(op, t[0]), TensorGradCheck.Input(1, 4.0, 3, 7));

    [Test] public void Geglu() => Agree("geglu", PointAtol, PointRtol, PointAtol, PointRtol,
        t => F.Geglu(t[0]), TensorGradCheck.Input(1, 3.0, 3, 10));

    [Test] public void Embedding() => Agree("embedding", Exact, Exact, MoveSumAtol, Exact,
        (be, t) => F.Embedding(Tensor.FromInts(be, [4, 0, 4, 2, 4], 5), t[0]), In(1, 5, 3));

    [Test] public void Upsample() => Agree("upsample", Exact, Exact, MoveSumAtol, Exact,
        t => F.UpsampleNearest2x(t[0]), In(1, 1, 2, 3, 2));

    [Test] public void PadConcatNarrowChunk() => Agree("pad/concat/narrow/chunk", Exact, Exact, Exact, Exact,
        t =>
        {
            var (a, b) = F.Chunk2(F.Concat(F.Pad2d(t[0], 0, 1, 0, 1), t[1], 1), 2);
            return F.Concat(F.Narrow(a, 1, 1, 2), F.Narrow(F.Narrow(b, 1, 0, 2), -1, 1, 3), -1);
        }, In(1, 1, 2, 3, 3), In(2, 1, 1, 4, 4));

    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void Cast(DType dtype) => Agree($"cast {dtype.Name()}", Exact, Exact, Exact, Exact, t => F.Cast(t[0], dtype), In(1, 3, 5));

    [Test]
    public void ConvNormSiluAttentionLinearMse()
    {
        const int n = 1, c = 4, h = 3, w = 3;
        Agree("conv → group norm → silu → attention over pixels → linear → mse", ChainAtol, ChainRtol, ChainAtol, ChainRtol,
            (be, t) =>
            {
                var x = F.Silu(F.GroupNorm(F.Conv2d(t[0], t[1], t[2], 1, 1), 2, t[3], t[4], 1e-5f));   // (N, C, H, W)
                var tokens = F.Reshape(F.Permute(F.Reshape(x, n, c, h * w), 0, 2, 1), n, h * w, c);   // (N, HW, C)
                var o = F.Linear(F.Attention(tokens, tokens, tokens, heads: 2), t[5], t[6]);            // (N, HW, C)
                return F.MseLoss(o, Tensor.FromArray(be, TestData.ToFloat(TestData.Uniform(9, n * h * w * c)), n, h * w, c));
            },
            In(1, n, 2, h, w), In(2, c, 2, 3, 3), In(3, c), In(4, c), In(5, c), In(6, c, c), In(7, c));
    }
}
