// Entry point of the perf tools: the kernel sweep harness, or BenchmarkDotNet with `bdn`.
Console.WriteLine("perf: not yet");
