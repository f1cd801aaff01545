// The same forward + backward graph on the cpu and the CUDA backends (emulated, or a GPU) agrees with the reference backend.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Layers;
using DreamBooth.Models.UNet;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

[TestFixtureSource(nameof(Tiers))]
public class BackendAgreementTests(string backendName)
{
    /// <summary>cpu, the emulated CUDA tier, and the CUDA tier on a GPU when the device check asks for it.</summary>
    public static IEnumerable<string> Tiers => BackendTest.BackendNames.Where(n => n is "cpu" or BackendTest.Emulated or BackendTest.Cuda);

    // The reference computes in double and rounds once; the other tiers compute in f32 (the tolerances of each op's
    // kernel tests in tests/Kernels and tests/Ilgpu, at these tiny shapes). Gradients include the loss Σ w·y, whose
    // own backward (dy = w) is exact on every tier.
    const double Exact = 0;                               // data movement and casts: bit-identical by construction
    const double MoveSumAtol = 1e-6;                      // upsample / embedding backward: f32 sums of ≤ 4 values of size ≤ 1
    const double PointAtol = 1e-6, PointRtol = 1e-5;      // one f32 formula per element (exp, erf approximations)
    const double SoftmaxGradRtol = 1e-4;                  // softmax backward: one f32 dot product per row
    const double SumAtol = 1e-5, SumRtol = 1e-4;          // conv, GEMM, reductions and broadcast gradients: f32 sums
                                                          // of ≤ 50 products in another order (cpu: Winograd)
    const double NormAtol = 3e-5, NormRtol = 3e-5;        // f32 one-pass statistics; y and dx are O(1)·x̂
    const double NormParamAtol = 1e-4;                    // dγ, dβ: f32 sums over N·HW products
    const double AttnAtol = 5e-6, AttnRtol = 3e-5;        // f32 scores and a ~2-ulp exp (the CUDA tier: ex2.approx)
    const double AttnGradAtol = 3e-5, AttnGradRtol = 3e-4;   // two more f32 products per gradient (dP, then dS·K / dSᵀ·Q)
    // The chain passes five sum-type ops forward and back, each adding its own f32 error on top of the previous ones.
    const double ChainAtol = 2e-4, ChainRtol = 1e-3;

    // A whole block (ResnetBlock2D, BasicTransformerBlock): a dozen of the ops above forward and back, parameter
    // gradients up to ~8 summed over every position. Measured at most 1.5e-6 absolute on both tiers; ten times that.
    const double BlockAtol = 2e-5, BlockRtol = 1e-4;

    IBackend _backend = null!, _reference = null!;

    [OneTimeSetUp]
    public void Create()
    {
        _backend = BackendTest.NewBackend(backendName);
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

    /// <summary>Like Agree for a module: a fresh one per backend, every one holding the reference's initial weights, so
    /// the flat parameter gradients are compared too.</summary>
    void AgreeModule<TModule>(string what, double atol, double rtol, Func<TModule> create, Func<TModule, Tensor[], Tensor> f,
        params (float[], int[])[] inputs) where TModule : Module
    {
        float[]? initial = null;
        (float[] Y, float[][] Grads) RunModule(IBackend backend)
        {
            var module = create();
            using var store = new ParameterStore(backend, module);
            if (initial is null)
            {
                store.Initialize(seed: 5);
                initial = new float[store.Length];
                backend.Download<float>(initial, store.Values);
            }
            else backend.Upload<float>(store.Values, initial);
            var (y, grads) = Run(backend, (_, t) => f(module, t), inputs);
            var dParams = new float[store.TrainableLength];
            backend.Download<float>(dParams, store.Grads);
            Assert.That(dParams, Has.Some.Not.EqualTo(0f), $"{what}: parameter gradients");
            return (y, [.. grads, dParams]);
        }
        var reference = RunModule(_reference);
        var (y, grads) = RunModule(_backend);
        Close.Assert(y, reference.Y, atol, rtol, $"{what} on {backendName}: output");
        for (int i = 0; i < grads.Length; i++)
            Close.Assert(grads[i], reference.Grads[i], atol, rtol,
                $"{what} on {backendName}: gradient of {(i < inputs.Length ? $"input {i}" : "the parameters")}");
    }

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

    [Test] public void MatMul2d() => Agree("matmul 2-d", SumAtol, SumRtol, SumAtol, SumRtol,
        t => F.MatMul(t[0], t[1]), In(1, 3, 5), In(2, 5, 4));

    [Test] public void MatMulBatched() => Agree("matmul batched", SumAtol, SumRtol, SumAtol, SumRtol,
        t => F.MatMul(t[0], t[1]), In(1, 2, 3, 5), In(2, 2, 5, 4));

    [Test] public void LinearWithoutBias() => Agree("linear without bias", SumAtol, SumRtol, SumAtol, SumRtol,
        t => F.Linear(t[0], t[1]), In(1, 2, 3, 5), In(2, 4, 5));

    /// <summary>Both operands broadcast, the first along the leading axis and a middle one: its gradient is a sum over
    /// them. A divisor in [0.5, 1.5) keeps Div away from zero. The output is exact: one f32 +, −, × or ÷ per element
    /// is correctly rounded, and the reference's double result of two f32 operands rounds to the same f32.</summary>
    [TestCase(BinaryOp.Add)]
    [TestCase(BinaryOp.Sub)]
    [TestCase(BinaryOp.Mul)]
    [TestCase(BinaryOp.Div)]
    public void BroadcastBinary(BinaryOp op) => Agree($"broadcast {op}", Exact, Exact, SumAtol, SumRtol,
        t => F.Binary(op, t[0], t[1]), In(1, 3, 1, 4), (In(2, 2, 1, 5, 1).Item1.Select(v => 1f + 0.5f * v).ToArray(), [2, 1, 5, 1]));

    // alpha·x and alpha·dy: one correctly rounded f32 product per element, as above.
    [Test] public void Scale() => Agree("scale", Exact, Exact, Exact, Exact, t => F.Scale(t[0], 0.375f), In(1, 3, 5));

    // Every x element's gradient is scale·dy of its reduced position: the same f32 product on every tier.
    [TestCase(false, new[] { 0, 2 })]
    [TestCase(true, new[] { 1 })]
    [TestCase(true, new[] { -1, 0 })]
    public void SumAndMeanOverAxes(bool mean, int[] axes) => Agree($"{(mean ? "mean" : "sum")} over [{string.Join(", ", axes)}]",
        SumAtol, SumRtol, Exact, Exact, t => mean ? F.Mean(t[0], axes) : F.Sum(t[0], axes), In(1, 3, 4, 5));

    [Test] public void ViewsAndCopies() => Agree("reshape/permute/narrow/chunk/copy", Exact, Exact, Exact, Exact,
        t =>
        {
            var x = F.Permute(F.Reshape(t[0], 4, 3, 5), 2, 0, 1);       // (5, 4, 3), strided
            var (a, b) = F.Chunk2(F.Narrow(x, 0, 1, 4), 0);              // (2, 4, 3) twice
            var n = F.Narrow(b, 1, 1, 2);                                // (2, 2, 3)
            return F.Add(F.Copy(a), F.Concat(n, n, 1));                  // (2, 4, 3)
        }, In(1, 2, 6, 5));

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

    // Under autocast every tier rounds the same f32 operands (and the same dy = w) with the same round-to-nearest-even
    // cast, so the half GEMM reads identical inputs everywhere; only its f32 accumulation order differs.
    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void AutocastLinear(DType half) => Agree($"autocast {half.Name()} linear", SumAtol, SumRtol, SumAtol, SumRtol,
        t => { using (Autocast.Enable(half)) return F.Linear(t[0], t[1], t[2]); }, In(1, 2, 3, 5), In(2, 4, 5), In(3, 4));

    [TestCase(DType.F16, false)]
    [TestCase(DType.F16, true)]
    [TestCase(DType.BF16, false)]
    [TestCase(DType.BF16, true)]
    public void AutocastMatMul(DType half, bool batched) => Agree($"autocast {half.Name()} matmul batched={batched}",
        SumAtol, SumRtol, SumAtol, SumRtol, t => { using (Autocast.Enable(half)) return F.MatMul(t[0], t[1]); },
        batched ? [In(1, 2, 3, 5), In(2, 2, 5, 4)] : [In(1, 3, 5), In(2, 5, 4)]);

    [Test] public void ResnetBlock2DGradients() => AgreeModule("resnet block", BlockAtol, BlockRtol,
        () => new ResnetBlock2D(4, 6, 5, groups: 2, eps: 1e-5f),
        (block, t) => block.Forward(t[0], t[1]), In(1, 2, 4, 4, 4), In(2, 2, 5));

    [Test] public void BasicTransformerBlockGradients() => AgreeModule("basic transformer block, self and cross attention",
        BlockAtol, BlockRtol, () => new BasicTransformerBlock(dim: 8, heads: 2, headDim: 4, contextDim: 6, onlyCrossAttention: false),
        (block, t) => block.Forward(t[0], t[1]), In(1, 2, 5, 8), In(2, 2, 3, 6));
}
