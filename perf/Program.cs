// Entry point of the perf tools: kernel sweeps checked against the reference, the FMA peak, the peer table, BenchmarkDotNet.
using BenchmarkDotNet.Running;
using DreamBooth.Perf;

const string usage = """
usage: dotnet run -c Release --project perf -- <command> [args]
  gemm M N K [transA transB]        one GEMM (0/1 flags), checked against the reference, then timed;
       [--dtype f32,f16,bf16]       A and B of each listed type (f16/bf16 accumulate in f32), one row each
  conv N C H W OutC K [stride pad]  conv2d forward, grad-input and grad-weight
  attention B H Lq Lk D [causal]    fused attention forward and backward
  groupnorm N C H W G               group norm forward and backward
  groupnorm-silu N C H W G          silu(group norm): the fused op against group norm then silu, fwd and fwd+bwd
  layernorm ROWS DIM                layer norm over the last dim, forward and backward
  geglu ROWS DIM                    GEGLU: x [ROWS, 2·DIM] -> y [ROWS, DIM], fwd and fwd+bwd
  activation N [--op silu]          one activation over N elements (silu, gelu, gelutanh, quickgelu), fwd and fwd+bwd
  peak                              the FMA peak of this machine (1 core and all cores)
  ptx [--dump DIR]                  the CUDA kernels' PTX assembled by ptxas for sm_80 and sm_90: registers, shared
                                    memory, spills (needs .ci/fetch-ptxas); --dump also writes the PTX files
  device [--emulate]                the CUDA tier on the first GPU, timed with profiling markers: TFLOP/s and GB/s
                                    against the GPU's peak; without a GPU it prints the ptxas table (--emulate runs
                                    small cases on ILGPU's CPU emulator instead, to exercise the path)
  unet --config PATH [--batch B] [--resolution R] [--steps S] [--device D]
                                    a whole UNet: no-grad forward and AdamW training step, as the peer's unet-step
  ops [--peer FILE] [--reps N]      the peer benchmark's op table on our cpu tier; with --peer (the output of the peer's
                                    `ops` command) adds its median and our speed-up beside each row
  bdn [BenchmarkDotNet args]        the BenchmarkDotNet suite (e.g. bdn --filter '*Gemm*')
options: --reps N (median of N timed runs, default 9), --no-check (skip the reference check), --vector256 (the sweeps
         and peak on the cpu tier held to Vector256: the AVX2 machines' code, measured on an AVX-512 one)
""";

if (args.Length == 0) { Console.WriteLine(usage); return 2; }
var rest = args[1..];
try
{
    switch (args[0])
    {
        case "bdn": BenchmarkSwitcher.FromAssembly(typeof(Sweep).Assembly).Run(rest); return 0;
        case "peak": Peak.Run(new Options(rest)); return 0;
        case "ptx": PtxTable.Run(new Options(rest)); return 0;
        case "device": DevicePerf.Run(new Options(rest)); return 0;
        case "unet": UNetBench.Run(new Options(rest)); return 0;
        case "ops": Sweep.Ops(new Options(rest)); return 0;
        case "gemm": case "conv": case "attention": case "groupnorm": case "groupnorm-silu": case "layernorm": case "geglu": case "activation": case "adamw": Sweep.Single(args[0], new Options(rest)); return 0;
        default: Console.Error.WriteLine($"unknown command '{args[0]}'\n{usage}"); return 2;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException)
{
    Console.Error.WriteLine($"perf {args[0]}: {e.Message}");
    return 2;
}
