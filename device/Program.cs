// The device check's one binary: the kernel tests on a GPU, the dreambooth CLI and the perf device commands, self-contained.
using System.Diagnostics;
using DreamBooth.Tests.Support;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

const string usage = """
usage: DreamBooth.DeviceCheck <command> [args]
  tests [--tier cuda] [--match REGEX] [--report FILE]
                                        the tier's fixtures of every kernel test body and the backward-graph agreement
                                        (the tier's name in the fixture: cuda, cuda-emulated, cpu, ...), or those whose
                                        full name matches REGEX; failures with their message and a summary here, one
                                        line per test in FILE
  dreambooth ARGS                       the dreambooth CLI (devices, profile, demo, train, ...)
  perf device|unet ARGS                 the perf tools' per-kernel table on the GPU, or a whole UNet step
""";
if (args.Length == 0) { Console.WriteLine(usage); return 2; }
try
{
    switch (args[0])
    {
        case "tests": return KernelTests.Run(args[1..]);
        case "dreambooth": return DreamBooth.Trainer.Cli.Run(args[1..]);
        case "perf" when args.Length > 1 && args[1] == "device": DreamBooth.Perf.DevicePerf.Run(new DreamBooth.Perf.Options(args[2..])); return 0;
        case "perf" when args.Length > 1 && args[1] == "unet": DreamBooth.Perf.UNetBench.Run(new DreamBooth.Perf.Options(args[2..])); return 0;
        default: Console.Error.WriteLine(usage); return 2;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or NotSupportedException)
{
    Console.Error.WriteLine($"{args[0]}: {e.Message}");   // as perf's own entry point reports them
    return 1;
}

/// <summary>NUnit's framework runner over the test assembly, filtered to one tier's fixtures.</summary>
static class KernelTests
{
    public static int Run(string[] args)
    {
        string tier = Value(args, "--tier") ?? BackendTest.Cuda;
        string? report = Value(args, "--report");
        string? match = Value(args, "--match");
        if (tier == BackendTest.Cuda) Environment.SetEnvironmentVariable(BackendTest.GpuVariable, "1");   // before the fixtures are built
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        runner.Load(typeof(BackendTest).Assembly, new Dictionary<string, object>());
        // A fixture of a tier is named Class("tier"); its tests' full names carry that.
        string tierFilter = $"<test re=\"1\">\\(\"{System.Text.RegularExpressions.Regex.Escape(tier)}\"\\)</test>";
        var filter = TestFilter.FromXml(match is null ? $"<filter>{tierFilter}</filter>"
            : $"<filter><and>{tierFilter}<test re=\"1\">{System.Security.SecurityElement.Escape(match)}</test></and></filter>");
        using var output = report is null ? null : new StreamWriter(report);
        var listener = new Lines(output);
        var clock = Stopwatch.StartNew();
        var result = runner.Run(listener, filter);
        string summary = $"{tier}: {result.PassCount} passed, {result.FailCount} failed, {result.SkipCount + result.InconclusiveCount} skipped in {clock.Elapsed:mm\\:ss}";
        Console.WriteLine(summary);
        output?.WriteLine(summary);
        return result.FailCount == 0 && result.PassCount > 0 ? 0 : 1;
    }

    static string? Value(string[] args, string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

    sealed class Lines(StreamWriter? report) : ITestListener
    {
        public void TestStarted(ITest test) { }
        public void TestOutput(TestOutput output) { }
        public void SendMessage(TestMessage message) { }

        public void TestFinished(ITestResult result)
        {
            if (result.Test.IsSuite) return;
            string status = result.ResultState.Status.ToString().ToUpperInvariant();
            string line = $"{status,-12} {result.Test.FullName} ({result.Duration * 1000:F0} ms)";
            if (result.ResultState.Status == TestStatus.Failed) line += "\n    " + result.Message?.Replace("\n", "\n    ");
            if (result.ResultState.Status == TestStatus.Failed) Console.WriteLine(line);
            report?.WriteLine(line);
            report?.Flush();
        }
    }
}
