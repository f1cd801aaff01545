// The BenchmarkDotNet suite: the peer's op rows on the cpu tier (run with `bdn`), for statistics beyond the sweep's median.
using BenchmarkDotNet.Attributes;
using DreamBooth.Kernels;

namespace DreamBooth.Perf;

[MemoryDiagnoser]
public class OpBenchmarks
{
    IBackend _cpu = null!;
    Work _work = null!;

    public static IEnumerable<string> Rows => Cases.PeerOps().Select(c => $"{c.Op} {c.Shape}");

    [ParamsSource(nameof(Rows))]
    public string Row { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        _cpu = Backends.Create("cpu");
        _work = Cases.PeerOps().Single(c => $"{c.Op} {c.Shape}" == Row).Build(_cpu);
    }

    [Benchmark]
    public void Run() => _work.Run();

    [GlobalCleanup]
    public void Cleanup() { _work.Dispose(); _cpu.Dispose(); }
}
