// Parallel loops on the cpu tier's own worker threads, the fixed work splits of the Cpu ops, and zero-padded vector tails.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

/// <summary>Parallel loops over the cores, on threads of our own that wait for work by spinning (as OpenMP's do), or a
/// plain loop where the process has one core (taskset -c 0, a 1-CPU container).
/// <para>The .NET thread pool, which Parallel.For used before, ran a step of the bench UNet on 2 cores with 4-5 worker
/// threads sharing the 2 CPUs and one CPU idle 15 % of the time (`perf record -a`, Xeon, 2026-12-05): its workers sleep
/// between loops and it adds threads when they are slow to come. Here there is one worker per extra core: it spins
/// for a while after each loop, so the next loop, usually a few microseconds later, finds it awake, then it sleeps.
/// Items are claimed in runs from a shared counter, shorter as fewer remain, so a slower core takes fewer; which
/// thread runs an item never changes what it computes. A loop started inside a loop's body runs inline on that thread,
/// and loops from different threads take turns.</para>
/// <para>On one core Parallel.For stalled: `perf attention 4 4 256 256 16` on 1 core took 52.7 ms a forward against
/// 1.07 ms as a loop (Xeon, .NET 10, 2026-12-05).</para></summary>
static class Cores
{
    static readonly int Count = Environment.ProcessorCount;
    static readonly object Turn = new(), Sleep = new();
    static readonly long SpinTicks = Stopwatch.Frequency / 2000;   // 0.5 ms of spinning after a loop
    static Loop? _current;
    static int _generation, _sleepers;
    [ThreadStatic] static bool _inside;   // this thread is running a loop's items (always, on a worker)

    /// <summary>One loop: items [from, to) claimed in turn by the caller and the workers.</summary>
    sealed class Loop(long from, long to, Action<long> body)
    {
        long _next = from, _left = to - from;
        ExceptionDispatchInfo? _error;

        public bool Done => Volatile.Read(ref _left) == 0;

        /// <summary>Claims runs of items until none are left: half of what remains over the threads at a time (at least 1),
        /// so loops over thousands of short items do not pay a contended claim each.</summary>
        public void Run()
        {
            while (true)
            {
                long run = Math.Max(1, (to - Volatile.Read(ref _next)) / (2 * Count));
                long first = Interlocked.Add(ref _next, run) - run, end = Math.Min(to, first + run);
                if (first >= to) return;
                try { for (long i = first; i < end; i++) body(i); }
                catch (Exception e) { Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null); }
                Interlocked.Add(ref _left, first - end);
            }
        }

        public void ThrowIfFailed() => _error?.Throw();
    }

    static Cores()
    {
        for (int w = 1; w < Count; w++)
            new Thread(Work) { IsBackground = true, Name = $"cpu tier worker {w}" }.Start();
    }

    public static void For(int from, int to, Action<int> body) => For(from, (long)to, i => body((int)i));

    public static void For(long from, long to, Action<long> body)
    {
        if (Count == 1 || to - from <= 1 || _inside)
        {
            for (long i = from; i < to; i++) body(i);
            return;
        }
        var loop = new Loop(from, to, body);
        lock (Turn)
        {
            Volatile.Write(ref _current, loop);
            Interlocked.Increment(ref _generation);              // a full fence: the loop is visible before _sleepers is read
            if (Volatile.Read(ref _sleepers) > 0) lock (Sleep) Monitor.PulseAll(Sleep);
            _inside = true;
            try { loop.Run(); }
            finally { _inside = false; }
            for (int spins = 0; !loop.Done; spins++)        // the workers' last items
                if (spins < 1 << 16) Thread.SpinWait(8); else Thread.Yield();
            Volatile.Write(ref _current, null);
        }
        loop.ThrowIfFailed();
    }

    static void Work()
    {
        _inside = true;
        int seen = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref _generation) == seen)
            {
                Thread.SpinWait(8);
                if (Stopwatch.GetTimestamp() - start < SpinTicks) continue;
                lock (Sleep)
                {
                    Interlocked.Increment(ref _sleepers);        // a full fence: read _generation after announcing the sleep
                    while (Volatile.Read(ref _generation) == seen) Monitor.Wait(Sleep);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            seen = Volatile.Read(ref _generation);
            Volatile.Read(ref _current)?.Run();
        }
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

    /// <summary>The first count floats at p, at most one vector of type TVec, zero padded to that vector: a plain load of
    /// a whole vector, else one masked load where the machine has them (lanes past count are not read, so they may lie
    /// past the buffer's end).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec LoadTail<TVec>(float* p, long count) where TVec : unmanaged
    {
        if (typeof(TVec) == typeof(Vector512<float>) && Avx512F.IsSupported)
        {
            var v = count >= 16 ? Vector512.Load(p) : Avx512F.MaskLoad(p, Mask512(count), Vector512<float>.Zero);
            return Unsafe.As<Vector512<float>, TVec>(ref v);
        }
        if (typeof(TVec) == typeof(Vector256<float>) && Avx.IsSupported)
        {
            var v = count >= 8 ? Vector256.Load(p) : Avx.MaskLoad(p, Mask256(count));
            return Unsafe.As<Vector256<float>, TVec>(ref v);
        }
        TVec t = default;
        float* dst = (float*)&t;
        for (long i = 0; i < count; i++) dst[i] = p[i];
        return t;
    }

    /// <summary>The first count floats of v (at most all of it), stored at p: a plain store of a whole vector, else one
    /// masked store where the machine has them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTail<TVec>(float* p, TVec v, long count) where TVec : unmanaged
    {
        if (typeof(TVec) == typeof(Vector512<float>) && Avx512F.IsSupported)
        {
            if (count >= 16) Unsafe.As<TVec, Vector512<float>>(ref v).Store(p);
            else Avx512F.MaskStore(p, Mask512(count), Unsafe.As<TVec, Vector512<float>>(ref v));
            return;
        }
        if (typeof(TVec) == typeof(Vector256<float>) && Avx.IsSupported)
        {
            if (count >= 8) Unsafe.As<TVec, Vector256<float>>(ref v).Store(p);
            else Avx.MaskStore(p, Mask256(count), Unsafe.As<TVec, Vector256<float>>(ref v));
            return;
        }
        float* src = (float*)&v;
        for (long i = 0; i < count; i++) p[i] = src[i];
    }

    static Vector512<float> Mask512(long count) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create((int)count)).AsSingle();

    static Vector256<float> Mask256(long count) =>
        Vector256.LessThan(Vector256<int>.Indices, Vector256.Create((int)count)).AsSingle();
}

