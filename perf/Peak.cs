// Measures the machine's fp32 FMA peak: independent FMA chains of the widest accelerated vector, on one core and on all cores.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DreamBooth.Perf;

static class Peak
{
    const int Iterations = 20_000_000;

    public static void Run(Options o)
    {
        bool wide = Vector512.IsHardwareAccelerated && !o.Flag("vector256");
        Console.WriteLine($"fp32 FMA peak, {(wide ? "Vector512" : "Vector256")}, {Environment.ProcessorCount} cores");
        double one = GflopsOn(1, wide), all = GflopsOn(Environment.ProcessorCount, wide);
        Console.WriteLine($"1 core: {one:F1} GFLOP/s   {Environment.ProcessorCount} cores: {all:F1} GFLOP/s");
    }

    /// <summary>Best of 5 runs of the FMA loop on `threads` threads at once.</summary>
    public static double GflopsOn(int threads, bool wide)
    {
        double best = 0;
        for (int run = 0; run < 5; run++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                _ => Sink(wide ? Chains512() : Chains256()));
            double seconds = sw.Elapsed.TotalSeconds;
            int lanes = wide ? 16 : 8;
            best = Math.Max(best, threads * (double)Iterations * 12 * lanes * 2 / seconds / 1e9);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Sink(float f) { if (f == 42.4242f) Console.Write(""); }

    /// <summary>12 independent accumulators hide the FMA latency (4 cycles × 2 pipes on Zen needs at least 8). The vector
    /// is the widest the hardware runs natively: without AVX-512, .NET emulates each Vector512 operation in software
    /// (measured at 40 % of the Vector256 rate), which would understate the peak.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static float Chains512()
    {
        var m = Vector512.Create(0.9999f); var c = Vector512.Create(1e-6f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                         a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < Iterations; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, c); a1 = Vector512.FusedMultiplyAdd(a1, m, c);
            a2 = Vector512.FusedMultiplyAdd(a2, m, c); a3 = Vector512.FusedMultiplyAdd(a3, m, c);
            a4 = Vector512.FusedMultiplyAdd(a4, m, c); a5 = Vector512.FusedMultiplyAdd(a5, m, c);
            a6 = Vector512.FusedMultiplyAdd(a6, m, c); a7 = Vector512.FusedMultiplyAdd(a7, m, c);
            a8 = Vector512.FusedMultiplyAdd(a8, m, c); a9 = Vector512.FusedMultiplyAdd(a9, m, c);
            a10 = Vector512.FusedMultiplyAdd(a10, m, c); a11 = Vector512.FusedMultiplyAdd(a11, m, c);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static float Chains256()
    {
        var m = Vector256.Create(0.9999f); var c = Vector256.Create(1e-6f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                         a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < Iterations; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, c); a1 = Vector256.FusedMultiplyAdd(a1, m, c);
            a2 = Vector256.FusedMultiplyAdd(a2, m, c); a3 = Vector256.FusedMultiplyAdd(a3, m, c);
            a4 = Vector256.FusedMultiplyAdd(a4, m, c); a5 = Vector256.FusedMultiplyAdd(a5, m, c);
            a6 = Vector256.FusedMultiplyAdd(a6, m, c); a7 = Vector256.FusedMultiplyAdd(a7, m, c);
            a8 = Vector256.FusedMultiplyAdd(a8, m, c); a9 = Vector256.FusedMultiplyAdd(a9, m, c);
            a10 = Vector256.FusedMultiplyAdd(a10, m, c); a11 = Vector256.FusedMultiplyAdd(a11, m, c);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
