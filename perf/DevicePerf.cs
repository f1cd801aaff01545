// `device`: the CUDA tier timed with ILGPU profiling markers (CUDA events), in TFLOP/s and GB/s against the GPU's peak.
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;
using ILGPU.Runtime.Cuda;

namespace DreamBooth.Perf;

static class DevicePerf
{
    /// <summary>Relative L2 error allowed against the reference: f32 accumulation in another order, and the GPU's
    /// ex2.approx / tanh.approx in softmax and activations (about 2 ulp each). The TF32 rows' inputs round to 11
    /// significant bits (2^-11 relative at most, random in sign): the emulated rows measured 2.7e-4 (GEMM) and 5.8e-5
    /// (convolution).</summary>
    const double CheckTolerance = 1e-3;

    public static void Run(Options o)
    {
        bool emulate = o.Flag("emulate");
        if (!emulate && !Backends.CudaPresent())
        {
            Console.WriteLine("no CUDA device here: the kernels' ptxas resources instead (run on a GPU for TFLOP/s and GB/s, " +
                              "or add --emulate to run small cases on ILGPU's CPU emulator)");
            PtxTable.Run(o);
            return;
        }
        using var backend = new IlgpuBackend(IlgpuDevice.Create(emulate, profiling: true));
        var peak = Peak(backend.Device);
        Console.WriteLine($"{backend.Device.Accelerator.Name}: {peak?.Describe ?? "CPU emulator, no peak"}; median of {o.Reps} runs timed between two " +
                          "profiling markers on the kernels' stream; check = relative L2 error against the cpu tier");
        Console.WriteLine($"{"op",-26} {"shape",-44} {"median ms",10} {"TFLOP/s",8} {"% peak",7} {"GB/s",8} {"% peak",7} {"check",9}");
        foreach (var c in emulate ? EmulatorCases() : DeviceCases())
        {
            using var work = c.Build(backend);
            string check = o.Check ? Check(c, work) : "-";
            double ms = Time(backend, work.Run, o.Reps);
            string flops = c.Flops > 0 ? $"{c.Flops / ms / 1e9,8:F3} {Percent(c.Flops / ms / 1e9, peak?.Tflops)}" : $"{"-",8} {"-",7}";
            string bytes = c.Bytes > 0 ? $"{c.Bytes / ms / 1e6,8:F1} {Percent(c.Bytes / ms / 1e6, peak?.GBps)}" : $"{"-",8} {"-",7}";
            Console.WriteLine($"{c.Op,-26} {c.Shape,-44} {ms,10:F3} {flops} {bytes} {check,9}");
        }
    }

    /// <summary>The peer's rows plus the SD 1.5 shapes a training step at 512² runs (latents 64², batch 2).</summary>
    static IEnumerable<Case> DeviceCases()
    {
        foreach (var c in Cases.PeerOps()) yield return c;
        foreach (var t in new[] { DType.F32, DType.F16, DType.BF16 }) yield return Cases.Gemm(4096, 4096, 4096, inputs: t);
        yield return Tf32(Cases.Gemm(4096, 4096, 4096));
        yield return Cases.Conv(2, 320, 64, 64, 320, 3, 1, 1, true);
        yield return Tf32(Cases.Conv(2, 320, 64, 64, 320, 3, 1, 1, true));
        yield return Cases.Conv(2, 1280, 8, 8, 1280, 3, 1, 1, true);
        yield return Cases.Attention(2, 8, 4096, 4096, 40, false, true);
        yield return Cases.Attention(2, 8, 4096, 77, 40, false, true);
        yield return Cases.Attention(2, 8, 256, 256, 160, false, true);
        yield return Cases.GroupNorm(2, 320, 64, 64, 32, true);
        yield return Cases.AdamW(859_520_964 / 8 * 8);
        yield return Cases.AdamW8bit(859_520_964 / 8 * 8);
    }

    /// <summary>Shapes the emulator finishes in seconds: they prove the timing path, not the GPU's speed.</summary>
    static IEnumerable<Case> EmulatorCases()
    {
        yield return Cases.Gemm(64, 64, 64);
        yield return Tf32(Cases.Gemm(64, 64, 64));
        yield return Cases.Conv(1, 8, 8, 8, 8, 3, 1, 1, false);
        yield return Tf32(Cases.Conv(1, 8, 8, 8, 8, 3, 1, 1, false));
        yield return Cases.GroupNorm(1, 8, 4, 4, 4, false);
        yield return Cases.AdamW(1_000_000);
        yield return Cases.AdamW8bit(1_000_000);
    }

    /// <summary>The case (a GEMM or a convolution) with TF32 allowed while it runs on the CUDA tier (--allow_tf32); the
    /// cpu tier it is checked against has no TF32.</summary>
    static Case Tf32(Case c) => c with
    {
        Op = c.Op + " tf32",
        Build = be =>
        {
            var work = c.Build(be);
            var run = work.Run;
            if (be is IlgpuBackend cuda)
                work.Run = () =>
                {
                    cuda.AllowTf32 = true;
                    try { run(); }
                    finally { cuda.AllowTf32 = false; }
                };
            return work;
        },
    };

    static string Percent(double achieved, double? peak) => peak is { } p ? $"{100 * achieved / p,6:F1}%" : $"{"-",7}";

    static double Time(IlgpuBackend backend, Action run, int reps)
    {
        var stream = backend.Device.Accelerator.DefaultStream;
        run();                                               // loads and caches the kernels
        backend.Synchronize();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            using var start = stream.AddProfilingMarker();
            run();
            using var end = stream.AddProfilingMarker();
            end.Synchronize();
            times[i] = end.MeasureFrom(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    static string Check(Case c, Work work)
    {
        using var reference = Backends.Create("cpu");           // the cpu tier is itself checked against the reference
        using var expected = c.Build(reference);
        work.Run();
        expected.Run();
        double worst = 0;
        for (int i = 0; i < work.Outputs.Count; i++)
        {
            var got = new float[work.Outputs[i].Length];
            var want = new float[got.Length];
            work.Outputs[i].Backend.Download<float>(got, work.Outputs[i]);
            reference.Download<float>(want, expected.Outputs[i]);
            double err = 0, norm = 0;
            for (int j = 0; j < got.Length; j++) { err += Math.Pow(got[j] - want[j], 2); norm += (double)want[j] * want[j]; }
            worst = Math.Max(worst, Math.Sqrt(err / Math.Max(norm, 1e-30)));
        }
        if (!(worst <= CheckTolerance))
            throw new InvalidOperationException($"{c.Op} {c.Shape}: the CUDA tier differs from the cpu tier by {worst:E2} (relative L2)");
        return $"{worst:E1}";
    }

    sealed record DevicePeak(double Tflops, double GBps, string Describe);

    /// <summary>FP32 FMA peak = SMs × FP32 lanes per SM × 2 × clock; DRAM peak = 2 (DDR) × memory clock × bus width.
    /// Lanes per SM: 64 on sm_60/70/75/80 (A100), 128 on sm_61, sm_86/89 and sm_90 (H100).</summary>
    static DevicePeak? Peak(IlgpuDevice device)
    {
        var acc = device.Accelerator;
        if (acc is not CudaAccelerator cuda) return null;
        var arch = cuda.Architecture;
        int lanes = (arch.Major, arch.Minor) switch { (6, 1) or (8, 6) or (8, 9) or (9, _) => 128, _ => 64 };
        double tflops = acc.NumMultiprocessors * lanes * 2.0 * cuda.ClockRate * 1e3 / 1e12;
        double gbps = 2.0 * cuda.MemoryClockRate * 1e3 * cuda.MemoryBusWidth / 8 / 1e9;
        return new DevicePeak(tflops, gbps,
            $"sm_{arch.Major}{arch.Minor}, {acc.NumMultiprocessors} SMs, FP32 peak {tflops:F1} TFLOP/s, DRAM peak {gbps:F0} GB/s");
    }
}
