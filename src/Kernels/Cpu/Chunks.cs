// Fixed parallel work splits shared by the Cpu ops, and zero-padded loads/stores of vector tails.
using System.Runtime.CompilerServices;

namespace DreamBooth.Kernels.Cpu;

/// <summary>Parallel.For over the cores, or a plain loop where the process has one (taskset -c 0, a 1-CPU container).
/// There Parallel.For stalled: `perf attention 4 4 256 256 16` on 1 core took 52.7 ms a forward against 1.07 ms as a
/// loop, and `profile` of the demo's base UNet read 2.6-5 GFLOP/s for its attention (Xeon, .NET 10, 2026-12-05).</summary>
static class Cores
{
    static readonly bool Several = Environment.ProcessorCount > 1;

    public static void For(int from, int to, Action<int> body)
    {
        if (Several) Parallel.For(from, to, body);
        else for (int i = from; i < to; i++) body(i);
    }

    public static void For(long from, long to, Action<long> body)
    {
        if (Several) Parallel.For(from, to, body);
        else for (long i = from; i < to; i++) body(i);
    }
}

/// <summary>Fixed work splits for every Cpu op that splits flat work: the same split on every run, whatever the thread
/// timing, so results are deterministic; small jobs stay on the calling thread.</summary>
static unsafe class Chunks
{
    /// <summary>Elements per chunk (256 KiB of f32); below this a job runs single-threaded.</summary>
    public const long Grain = 1 << 16;

    /// <summary>Runs body(start, end) over [0, n) in chunks of Grain elements.</summary>
    public static void For(long n, Action<long, long> body) => For(n, Grain, body);

    /// <summary>Runs body(start, end) over [0, n) in chunks of `grain` items.</summary>
    public static void For(long n, long grain, Action<long, long> body)
    {
        grain = Math.Max(grain, 1);
        if (n <= grain) { if (n > 0) body(0, n); return; }
        Cores.For(0L, (n + grain - 1) / grain, c => body(c * grain, Math.Min(n, (c + 1) * grain)));
    }

    /// <summary>Runs body(item) for item in [0, count), in parallel when the whole job touches at least Grain elements.</summary>
    public static void Items(long count, long elements, Action<long> body)
    {
        if (elements < Grain || count == 1)
            for (long i = 0; i < count; i++) body(i);
        else
            Cores.For(0L, count, body);
    }

    /// <summary>The first count floats at p, fewer than one vector of type TVec holds, zero padded to that vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec LoadTail<TVec>(float* p, long count) where TVec : unmanaged
    {
        TVec v = default;
        float* dst = (float*)&v;
        for (long i = 0; i < count; i++) dst[i] = p[i];
        return v;
    }

    /// <summary>The first count floats of v, stored at p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTail<TVec>(float* p, TVec v, long count) where TVec : unmanaged
    {
        float* src = (float*)&v;
        for (long i = 0; i < count; i++) p[i] = src[i];
    }
}

