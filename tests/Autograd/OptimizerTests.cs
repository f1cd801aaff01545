// Optimizers against hand-written double updates, clipping, saved state, LR schedules, small nets that must fit, 8-bit AdamW.
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Kernels.Reference;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Autograd;

public class OptimizerTests
{
    // Three f32 steps against double: each step rounds p (|p| < 1.5, half an ulp ≈ 6e-8) a few times (decay, update);
    // the update's own relative error (~1e-6, f32 m/√v) times lr = 1e-2 is 1e-8. Three steps stay below 5e-7.
    const double StepAtol = 5e-7;
    // The norm is a float sum of squares (accumulated in double by the kernels) then rounded to float: 1e-6 relative.
    const double NormRtol = 1e-6;

    static IEnumerable<string> BackendNames => Backends.Names;

    static float[] Read(IBackend backend, DeviceBuffer buffer)
    {
        var values = new float[buffer.Length];
        backend.Download<float>(values, buffer);
        return values;
    }

    /// <summary>A store over an MLP whose first layer is frozen, so the update must leave the frozen tail alone.</summary>
    static (Mlp Net, ParameterStore Store) PartlyFrozen(IBackend backend)
    {
        var net = new Mlp(4, 6, 3);
        net.NamedParameters().First(p => p.Name == "fc1.weight").Parameter.RequiresGrad = false;
        net.NamedParameters().First(p => p.Name == "fc1.bias").Parameter.RequiresGrad = false;
        var store = new ParameterStore(backend, net);
        store.Initialize(seed: 5);
        return (net, store);
    }

    [TestCaseSource(nameof(BackendNames))]
    public void AdamWMatchesAHandWrittenDoubleAdamWOverThreeSteps(string backendName)
    {
        using var backend = Backends.Create(backendName);
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        int n = (int)store.TrainableLength;
        float[] initial = Read(backend, store.Values);
        const float lr = 1e-2f, wd = 0.1f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
        using var adamw = new AdamW(store, lr, beta1, beta2, wd, eps);

        double[] p = initial.Take(n).Select(v => (double)v).ToArray(), m = new double[n], v = new double[n];
        for (int t = 1; t <= 3; t++)
        {
            float[] g = TestData.ToFloat(TestData.Uniform(20 + t, n, t == 2 ? 1e-3 : 1.0));
            backend.Upload<float>(store.Grads, g);
            adamw.Step();
            for (int i = 0; i < n; i++)
            {   // decoupled decay, moments, bias-corrected ratio
                p[i] *= 1 - (double)lr * wd;
                m[i] = beta1 * m[i] + (1 - (double)beta1) * g[i];
                v[i] = beta2 * v[i] + (1 - (double)beta2) * g[i] * g[i];
                double mHat = m[i] / (1 - Math.Pow(beta1, t)), vHat = v[i] / (1 - Math.Pow(beta2, t));
                p[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
            }
            Close.Assert(Read(backend, store.TrainableValues), p, StepAtol, 0, $"{backendName} AdamW step {t}");
        }
        Assert.That(adamw.StepCount, Is.EqualTo(3));
        Assert.That(Read(backend, store.Values).Skip(n), Is.EqualTo(initial.Skip(n)), "frozen parameters");
    }

    [Test]
    public void AdamWDefaultsAreDiffusers()
    {
        using var backend = Backends.Create("cpu");
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        using var adamw = new AdamW(store, 5e-6f);
        Assert.That(adamw.Lr, Is.EqualTo(5e-6f));
        Assert.That(adamw.Beta1, Is.EqualTo(0.9f), "adam_beta1");
        Assert.That(adamw.Beta2, Is.EqualTo(0.999f), "adam_beta2");
        Assert.That(adamw.WeightDecay, Is.EqualTo(1e-2f), "adam_weight_decay");
        Assert.That(adamw.Eps, Is.EqualTo(1e-8f), "adam_epsilon");
    }

    [TestCase(0f)]
    [TestCase(0.9f)]
    public void SgdMatchesItsClosedForm(float momentum)
    {
        using var backend = Backends.Create("cpu");
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        int n = (int)store.TrainableLength;
        const float lr = 0.1f;
        using var sgd = new Sgd(store, lr, momentum);
        double[] p = Read(backend, store.TrainableValues).Select(x => (double)x).ToArray(), b = new double[n];
        for (int t = 1; t <= 3; t++)
        {
            float[] g = TestData.ToFloat(TestData.Uniform(30 + t, n));
            backend.Upload<float>(store.Grads, g);
            sgd.Step();
            for (int i = 0; i < n; i++)
            {
                b[i] = momentum * b[i] + g[i];
                p[i] -= lr * b[i];
            }
            Close.Assert(Read(backend, store.TrainableValues), p, StepAtol, 0, $"SGD momentum {momentum} step {t}");
        }
    }

    [TestCase(0.5f)]      // the norm is above the limit: the step uses g·max/(norm + 1e-6)
    [TestCase(100f)]      // below: gradients pass unchanged
    [TestCase(null)]      // the default limit, 1 (diffusers' max_grad_norm), below the norm (≈ 2.6)
    public void ClipGradNormReturnsTheTotalNormAndScalesTheNextStepOnly(float? limit)
    {
        float maxNorm = limit ?? 1f;
        using var backend = Backends.Create("cpu");
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        int n = (int)store.TrainableLength;
        float[] g = TestData.ToFloat(TestData.Uniform(41, n));
        double expectedNorm = Math.Sqrt(g.Sum(x => (double)x * x));
        double factor = Math.Min(1, maxNorm / (expectedNorm + 1e-6));
        using var sgd = new Sgd(store, lr: 1f);
        backend.Upload<float>(store.Grads, g);

        float[] before = Read(backend, store.TrainableValues);
        float norm = limit is { } l ? sgd.ClipGradNorm(l) : sgd.ClipGradNorm();
        Assert.That(norm, Is.EqualTo(expectedNorm).Within(expectedNorm * NormRtol), "√(Σ g²)");
        if (limit is null) Assert.That(norm, Is.GreaterThan(1f), "the default limit must be active for this case to see it");
        Assert.That(Read(backend, store.Grads), Is.EqualTo(g), "clipping does not rewrite the gradients");
        sgd.Step();
        var expected = before.Select((p, i) => p - factor * g[i]).ToArray();
        Close.Assert(Read(backend, store.TrainableValues), expected, StepAtol, 0, "clipped step");

        before = Read(backend, store.TrainableValues);
        sgd.Step();                                                    // the factor was used up
        Close.Assert(Read(backend, store.TrainableValues), before.Select((p, i) => (double)p - g[i]).ToArray(), StepAtol, 0, "next step");
    }

    [Test]
    public void SavedStateResumesAdamWBitForBit()
    {
        using var backend = Backends.Create("cpu");
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        int n = (int)store.TrainableLength;
        void Grads(int t) => backend.Upload<float>(store.Grads, TestData.ToFloat(TestData.Uniform(50 + t, n)));

        using var first = new AdamW(store, 1e-2f);
        for (int t = 1; t <= 3; t++) { Grads(t); first.Step(); }
        var state = first.SaveState();
        float[] saved = Read(backend, store.Values);
        for (int t = 4; t <= 5; t++) { Grads(t); first.Step(); }
        float[] straight = Read(backend, store.Values);

        backend.Upload<float>(store.Values, saved);
        using var resumed = new AdamW(store, 1e-2f);
        resumed.LoadState(state);
        Assert.That(resumed.StepCount, Is.EqualTo(3));
        for (int t = 4; t <= 5; t++) { Grads(t); resumed.Step(); }
        Assert.That(Read(backend, store.Values), Is.EqualTo(straight));
        Assert.That(Read(backend, resumed.V[0]), Is.EqualTo(Read(backend, first.V[0])));
    }

    [Test]
    public void LoadStateNamesWhatDoesNotFit()
    {
        using var backend = Backends.Create("cpu");
        var (_, store) = PartlyFrozen(backend);
        using var _store = store;
        using var adamw = new AdamW(store, 1e-3f);
        var ok = adamw.SaveState();
        var missing = new OptimizerState(1, new Dictionary<string, float[]> { ["exp_avg"] = ok.Buffers["exp_avg"] }, ok.Codes);
        Assert.That(() => adamw.LoadState(missing), Throws.ArgumentException.With.Message.Contains("exp_avg_sq"));
        var shorter = new OptimizerState(1, ok.Buffers.ToDictionary(kv => kv.Key, kv => kv.Value[1..]), ok.Codes);
        Assert.That(() => adamw.LoadState(shorter), Throws.ArgumentException.With.Message.Contains("trainable parameters"));
    }

    // ---- 8-bit AdamW ----

    /// <summary>Two tensors of 4097 parameters: neither fills whole blocks, so each starts its own (17 + 17 blocks, where
    /// one flat run would have 33), and a 16-parameter bias keeps f32 moments.</summary>
    sealed class TwoTensors : Module
    {
        public TwoTensors()
        {
            AddParameter("a", Init.FanIn(64), 4097);
            AddParameter("bias", Init.FanIn(64), 16);
            AddParameter("b", Init.FanIn(64), 4097);
        }
    }

    [TestCaseSource(nameof(BackendNames))]
    public void AdamW8bitQuantisesEachLargeTensorInItsOwnBlocks(string backendName)
    {
        using var backend = Backends.Create(backendName);
        using var store = new ParameterStore(backend, new TwoTensors());
        store.Initialize(seed: 4);
        int n = (int)store.TrainableLength;
        using var adam = new AdamW8bit([store], 1e-2f);
        var state = adam.StateBuffers.ToDictionary(b => b.Name, b => b.Buffer);
        Assert.That(state.Keys, Is.EquivalentTo(new[] { "state1", "absmax1", "state2", "absmax2", "exp_avg", "exp_avg_sq" }));
        Assert.That(state["state1"].Length, Is.EqualTo(2 * 4097));
        Assert.That(state["absmax1"].Length, Is.EqualTo(34), "17 blocks per tensor");
        Assert.That(state["exp_avg"].Length, Is.EqualTo(16), "the bias");
        Assert.That(adam.StateBytes, Is.EqualTo(2 * 2 * 4097 + 2 * 4 * 34 + 2 * 4 * 16));
        using (var linear = new ParameterStore(backend, new LinearLayer(64, 128)))   // whole blocks: the estimate, plus the bias's f32 moments
        using (var linearAdam = new AdamW8bit([linear], 1e-2f))
            Assert.That(linearAdam.StateBytes, Is.EqualTo(AdamW8bit.EstimatedStateBytes(64 * 128) + 2 * 4 * 128), "the memory plan's estimate");

        // The same steps by the double references, tensor by tensor.
        double[] p = Read(backend, store.Values).Select(x => (double)x).ToArray();
        var slices = new[] { (Offset: 0, Length: 4097, Block: 0), (Offset: 4113, Length: 4097, Block: 17) };
        byte[] m = new byte[2 * 4097], v = new byte[2 * 4097];
        double[] mMax = new double[34], vMax = new double[34], m32 = new double[16], v32 = new double[16];
        for (int t = 1; t <= 3; t++)
        {
            double[] g = TestData.Uniform(60 + t, n);
            backend.Upload<float>(store.Grads, TestData.ToFloat(g));
            adam.Step();
            var s = new AdamWStep(1e-2f, t);
            for (int k = 0; k < 2; k++)
            {
                var (offset, length, block) = slices[k];
                AdamW8bitReference.Step(p.AsSpan(offset, length), g.AsSpan(offset, length), m.AsSpan(k * 4097, length), mMax.AsSpan(block, 17),
                    v.AsSpan(k * 4097, length), vMax.AsSpan(block, 17), s, length);
            }
            AdamWReference.Step(p.AsSpan(4097, 16), g.AsSpan(4097, 16), m32, v32, s, 16);
            Close.Assert(Read(backend, store.Values), p, StepAtol, 0, $"{backendName} AdamW8bit step {t}");
        }
    }

    /// <summary>fp32 AdamW and AdamW8bit from the same start on the same regression: a 64-128-64 MLP (two 8192-weight
    /// layers in 8 bits, the biases in f32) fitting a teacher's outputs, 300 steps at lr 1e-3.</summary>
    [Test]
    public void AdamW8bitTracksAdamWOnASmallRegression()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var teacher = new Mlp(64, 128, 64);
        using var teacherStore = new ParameterStore(backend, teacher);
        teacherStore.Initialize(seed: 21);
        var x = Tensor.RandomNormal(backend, 22, 0, 64, 64);
        Tensor target;
        using (Tape.NoGrad()) target = teacher.Forward(x);

        float[] initial = [];
        (double[] Losses, float[] Weights, long StateBytes) Train(bool eightBit)
        {
            var net = new Mlp(64, 128, 64);
            using var store = new ParameterStore(backend, net);
            store.Initialize(seed: 23);
            initial = Read(backend, store.Values);
            using Optimizer adam = eightBit ? new AdamW8bit([store], 1e-3f) : new AdamW(store, 1e-3f);
            var losses = new double[300];
            for (int step = 0; step < losses.Length; step++)
            {
                using var stepScope = new TensorScope();
                var loss = F.MseLoss(net.Forward(x), target);
                losses[step] = loss.Item();
                loss.Backward();
                adam.Step();
                store.ZeroGrad();
            }
            return (losses, Read(backend, store.Values), adam.StateBytes);
        }
        var full = Train(eightBit: false);
        var quantised = Train(eightBit: true);
        TestContext.Out.WriteLine($"loss {full.Losses[0]:G4} → AdamW {full.Losses[^1]:G4}, AdamW8bit {quantised.Losses[^1]:G4}; " +
                                  $"state {full.StateBytes} → {quantised.StateBytes} bytes");
        Assert.That(full.Losses[^1], Is.LessThan(full.Losses[0] / 1000), "the problem trains");
        double worst = full.Losses.Zip(quantised.Losses, (a, b) => Math.Abs(Math.Log(b / a))).Max();
        static double Distance(float[] a, float[] b) => Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Sum());
        double apart = Distance(full.Weights, quantised.Weights), travelled = Distance(full.Weights, initial);
        TestContext.Out.WriteLine($"largest loss ratio e^{worst:F3}; the weights end {apart / travelled:G3} of AdamW's path apart");
        Assert.That(worst, Is.LessThan(Math.Log(TrackLossRatio)), "the 8-bit loss at every step, within a factor of the f32 one");
        Assert.That(apart / travelled, Is.LessThan(TrackWeightShare), "the two runs' weights apart, against how far AdamW moved them");
        Assert.That(quantised.StateBytes, Is.LessThan(full.StateBytes * 0.3), "8-bit state against f32 moments");
    }

    // 8-bit moments round each step's m and v by up to half a map step (≤ 0.7 % of the block's absmax at the top of its
    // range, relatively more for small moments), so the runs drift apart a little every step; the loss falls 14,000×
    // and late in the run, at 1e-4 of the start, the two losses differ most. Measured on the cpu tier (2026-12-05):
    // largest loss ratio 1.23 (e^0.210); the final weights 10.0 % of AdamW's distance from the start apart (5.4 % of
    // their norm). The bounds leave a margin for the drift of another seed.
    const double TrackLossRatio = 1.35, TrackWeightShare = 0.15;

    [Test]
    public void SavedStateResumesAdamW8bitBitForBit()
    {
        using var backend = Backends.Create("cpu");
        using var store = new ParameterStore(backend, new TwoTensors());
        store.Initialize(seed: 5);
        int n = (int)store.TrainableLength;
        void Grads(int t) => backend.Upload<float>(store.Grads, TestData.ToFloat(TestData.Uniform(70 + t, n)));

        using var first = new AdamW8bit([store], 1e-2f);
        for (int t = 1; t <= 3; t++) { Grads(t); first.Step(); }
        var state = first.SaveState();
        Assert.That(state.Codes.Keys, Is.EquivalentTo(new[] { "state1", "state2" }));
        float[] saved = Read(backend, store.Values);
        for (int t = 4; t <= 5; t++) { Grads(t); first.Step(); }
        float[] straight = Read(backend, store.Values);

        backend.Upload<float>(store.Values, saved);
        using var resumed = new AdamW8bit([store], 1e-2f);
        resumed.LoadState(state);
        for (int t = 4; t <= 5; t++) { Grads(t); resumed.Step(); }
        Assert.That(Read(backend, store.Values), Is.EqualTo(straight));
        Assert.That(resumed.SaveState().Codes["state2"], Is.EqualTo(first.SaveState().Codes["state2"]));

        using var fp32 = new AdamW(store, 1e-2f);
        Assert.That(() => first.LoadState(fp32.SaveState()), Throws.ArgumentException.With.Message.Contains("state1"), "AdamW's state into AdamW8bit");
        var swapped = new OptimizerState(3, state.Buffers.Append(new("state1", new float[2 * 4097])).ToDictionary(),
            state.Codes.Where(c => c.Key != "state1").ToDictionary());
        Assert.That(() => first.LoadState(swapped), Throws.ArgumentException.With.Message.Contains("'state1' is f32"));
    }

    // ---- learning-rate schedules ----

    // The schedule evaluates the same closed forms in double; only the order of operations may differ.
    const double ScheduleTol = 1e-12;
    const int Warmup = 10, Total = 110;

    [TestCase("constant", 0, 1.0)]
    [TestCase("constant", 110, 1.0)]
    [TestCase("constant_with_warmup", 0, 0.0)]
    [TestCase("constant_with_warmup", 5, 0.5)]
    [TestCase("constant_with_warmup", Warmup, 1.0)]
    [TestCase("constant_with_warmup", 60, 1.0)]
    [TestCase("linear", 0, 0.0)]
    [TestCase("linear", 5, 0.5)]
    [TestCase("linear", Warmup, 1.0)]
    [TestCase("linear", 60, 0.5)]                 // (T − s)/(T − W) = 50/100
    [TestCase("linear", 85, 0.25)]
    [TestCase("linear", Total, 0.0)]
    [TestCase("cosine", 0, 0.0)]
    [TestCase("cosine", Warmup, 1.0)]
    [TestCase("cosine", 60, 0.5)]                 // ½(1 + cos(π/2))
    [TestCase("cosine", Total, 0.0)]
    public void SchedulesFollowTheirClosedForms(string name, int step, double factor)
    {
        var schedule = LrSchedule.Create(name, 2e-4f, name == "constant" ? 0 : Warmup, Total);
        Assert.That(schedule.Factor(step), Is.EqualTo(factor).Within(ScheduleTol));
        Assert.That(schedule.LrAt(step), Is.EqualTo((float)(2e-4f * factor)));
    }

    [Test]
    public void CosineDecaysAsHalfACosine()
    {
        var schedule = LrSchedule.Create("cosine", 1f, Warmup, Total);
        for (int s = Warmup; s <= Total; s += 7)
            Assert.That(schedule.Factor(s), Is.EqualTo(0.5 * (1 + Math.Cos(Math.PI * (s - Warmup) / (Total - Warmup)))).Within(ScheduleTol), $"step {s}");
    }

    /// <summary>W = 10, T = 110: 2 hard restarts cut the 100 decay steps into two half cosines of 50.</summary>
    [TestCase(5, 0.5)]
    [TestCase(Warmup, 1.0)]
    [TestCase(35, 0.5)]                            // a quarter into the first cycle: ½(1 + cos(π/2))
    [TestCase(59, 0.0009866)]                      // the last step of the first cycle: ½(1 + cos(π·49/50))
    [TestCase(60, 1.0)]                            // the restart
    [TestCase(Total, 0.0)]
    public void CosineWithRestartsRestartsNumCyclesTimes(int step, double factor) =>
        Assert.That(LrSchedule.Create("cosine_with_restarts", 1f, Warmup, Total, numCycles: 2).Factor(step), Is.EqualTo(factor).Within(1e-6));

    [TestCase(5, 1.0, 0.5)]
    [TestCase(Warmup, 1.0, 1.0)]
    [TestCase(60, 1.0, 0.5)]                       // linear in the remaining fraction, down to lr_end = 1e-7
    [TestCase(60, 2.0, 0.25)]
    [TestCase(Total, 2.0, 0.0)]
    [TestCase(Total + 5, 2.0, 0.0)]
    public void PolynomialDecaysToLrEnd(int step, double power, double remaining)
    {
        const double lr = 1e-3, end = LrSchedule.PolynomialEnd;
        var schedule = LrSchedule.Create("polynomial", (float)lr, Warmup, Total, power: power);
        double expected = step < Warmup ? remaining : ((float)lr - end) * remaining / (float)lr + end / (float)lr;
        Assert.That(schedule.Factor(step), Is.EqualTo(expected).Within(1e-9));
    }

    [Test]
    public void BadSchedulesAreRefusedWithTheReason()
    {
        Assert.That(() => LrSchedule.Create("cosine_with_restarts_typo", 1e-4f, 0, 10),
            Throws.ArgumentException.With.Message.Contains("unknown scheduler 'cosine_with_restarts_typo'").And.Message.Contains("constant_with_warmup"));
        Assert.That(() => LrSchedule.Create("linear", 1e-4f, 10, 10), Throws.ArgumentException.With.Message.Contains("more total steps"));
        Assert.That(() => LrSchedule.Create("constant", 1e-4f, -1, 10), Throws.ArgumentException);
        Assert.That(() => LrSchedule.Create("polynomial", 1e-8f, 0, 10), Throws.ArgumentException.With.Message.Contains("lr_end"));
        Assert.That(() => LrSchedule.Create("cosine_with_restarts", 1e-4f, 0, 10, numCycles: 0), Throws.ArgumentException.With.Message.Contains("lr_num_cycles"));
    }

    // ---- training sanity ----

    /// <summary>A residual block (checkpointed in the test below) and an MLP head in one parameter store.</summary>
    sealed class BlockAndHead : Module
    {
        public readonly ResidualBlock Block;
        public readonly Mlp Head;

        public BlockAndHead(int dim, int hidden, int outF)
        {
            Block = AddModule("block", new ResidualBlock(dim));
            Head = AddModule("head", new Mlp(dim, hidden, outF));
        }
    }

    /// <summary>Steps of a small net with every training feature (autocast, a checkpointed block, a narrow view, the
    /// loss scaler's clipped AdamW step) leave the backend's allocated bytes where they were before the first step:
    /// every activation, gradient of an intermediate and recomputed block lives inside the step's scope.</summary>
    [TestCaseSource(typeof(BackendTest), nameof(BackendTest.BackendNames))]
    public void TrainingStepsLeaveNoDeviceMemoryBehind(string backendName)
    {
        using var backend = BackendTest.NewBackend(backendName);
        var net = new BlockAndHead(8, 16, 4);
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 1);
        using var adamw = new AdamW(store, 1e-2f);
        var scaler = new GradScaler(initScale: 1024f);
        using var batch = new TensorScope();
        var x = Tensor.RandomNormal(backend, 1, 0, 2, 6, 8);
        var target = Tensor.RandomNormal(backend, 2, 0, 6, 4);
        long baseline = backend.Memory.CurrentBytes;
        var losses = new List<float>();
        for (int step = 0; step < 4; step++)
        {
            using (var scope = new TensorScope())
            {
                Tensor loss;
                using (Autocast.Enable(DType.BF16))
                {
                    var h = Checkpoint.Run(t => net.Block.Forward(t[0]), x);      // (2, 6, 8)
                    var first = F.Reshape(F.Narrow(h, 0, 0, 1), 6, 8);           // a view of the first sample
                    loss = F.MseLoss(net.Head.Forward(first), target);
                }
                losses.Add(loss.Item());
                loss.Backward(scaler.Scale);
            }
            Assert.That(scaler.Step(adamw).Skipped, Is.False);
            store.ZeroGrad();
            Assert.That(backend.Memory.CurrentBytes, Is.EqualTo(baseline), $"allocated bytes after step {step + 1}");
        }
        Assert.That(losses[^1], Is.LessThan(losses[0]), "the steps trained: " + string.Join(", ", losses));
    }

    /// <summary>Runs AdamW (lr 1e-2) until the loss is below 1/100 of where it started; fails past 500 steps.</summary>
    static void FitsWithin500Steps(IBackend backend, Module net, Func<Tensor, Tensor> forward, Tensor x, Tensor target)
    {
        const int maxSteps = 500;
        using var store = new ParameterStore(backend, net);
        store.Initialize(seed: 3);
        using var adamw = new AdamW(store, 1e-2f);
        float first = float.NaN;
        for (int step = 0; step < maxSteps; step++)
        {
            using var scope = new TensorScope();
            var loss = F.MseLoss(forward(x), target);
            float value = loss.Item();
            if (step == 0) first = value;
            else if (value < first / 100)
            {
                TestContext.Out.WriteLine($"{net.GetType().Name}: loss {first:G4} → {value:G4} in {step} AdamW steps");
                return;
            }
            loss.Backward();
            adamw.Step();
            store.ZeroGrad();
        }
        Assert.Fail($"{net.GetType().Name}: loss did not drop 100× within {maxSteps} steps (from {first})");
    }

    [Test]
    public void AdamWFitsATwoLayerMlpToAFixedBatch()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var net = new Mlp(8, 64, 4);
        var x = Tensor.RandomNormal(backend, 10, 0, 16, 8);
        var target = Tensor.RandomNormal(backend, 11, 0, 16, 4);
        FitsWithin500Steps(backend, net, net.Forward, x, target);
    }

    [Test]
    public void AdamWFitsATinyConvNetToATeacher()
    {
        using var backend = Backends.Create("cpu");
        using var scope = new TensorScope();
        var teacher = new ConvNet(2, 8);
        using var teacherStore = new ParameterStore(backend, teacher);
        teacherStore.Initialize(seed: 99);
        var x = Tensor.RandomNormal(backend, 12, 0, 4, 2, 8, 8);
        Tensor target;
        using (Tape.NoGrad()) target = teacher.Forward(x);
        var net = new ConvNet(2, 8);
        FitsWithin500Steps(backend, net, net.Forward, x, target);
    }
}
