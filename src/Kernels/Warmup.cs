// Warm-up before a timing: a piece of work run until tiered compilation has replaced its first code.
using System.Diagnostics;
using System.Runtime;

namespace DreamBooth.Kernels;

/// <summary>
/// .NET first runs a method's unoptimised code and compiles the optimised one in the background after about 30 calls,
/// so a timing taken too soon measures the compiler. The wait can be long: the runtime counts calls only once no method
/// has been compiled for a while (100 ms, ten times that in a one-core process; perf and dreambooth set no wait), and
/// on one core the compiler shares the core with the work. Run therefore goes on past a fixed time until the JIT has
/// compiled nothing for a quiet spell. On one core (taskset -c 0, 2026-12-05), without that: `perf ops` timed its first
/// row, [512x512]x[512x512], at 2.36 ms against 1.66; two of three `profile` runs of the bench UNet timed attention
/// backward at 189 and 331 ms a step against 105.
/// </summary>
public static class Warmup
{
    /// <summary>Runs work(0), work(1), ... at least minRuns times and for at least `least`, then until the JIT has compiled
    /// nothing for `quiet`, or `most` has passed in all. Returns the number of runs.</summary>
    public static int Run(Action<int> work, int minRuns, TimeSpan least, TimeSpan quiet, TimeSpan most)
    {
        var clock = Stopwatch.StartNew();
        var calm = Stopwatch.StartNew();
        long compiled = JitInfo.GetCompiledMethodCount();
        int runs = 0;
        do
        {
            work(runs++);
            long now = JitInfo.GetCompiledMethodCount();
            if (now != compiled) { compiled = now; calm.Restart(); }
        }
        while (runs < minRuns || clock.Elapsed < least || calm.Elapsed < quiet && clock.Elapsed < most);
        return runs;
    }
}
