// Creates a backend by name: "reference" (scalar oracle), "cpu" (fast SIMD) or "cuda" (ILGPU kernels on the first CUDA GPU).
using DreamBooth.Kernels.Ilgpu;

namespace DreamBooth.Kernels;

public static class Backends
{
    /// <summary>The backends every machine has (the suites that run each op at full size iterate these); "cuda" also
    /// exists where a CUDA GPU does.</summary>
    public static readonly string[] Names = ["reference", "cpu"];

    public static IBackend Create(string name) => name switch
    {
        "reference" => new Reference.ReferenceBackend(),
        "cpu" => new Cpu.CpuBackend(),
        "cuda" => CreateCuda(),
        _ => throw new ArgumentException($"unknown backend '{name}'; expected one of: {string.Join(", ", Names)}, cuda"),
    };

    /// <summary>"cuda" when a CUDA GPU is present, else "cpu".</summary>
    public static IBackend Auto() => Create(IlgpuDevice.CudaPresent() ? "cuda" : "cpu");

    /// <summary>The CUDA tier on ILGPU's CPU emulator: the same kernels, slowly, on any machine (tests only).</summary>
    public static IlgpuBackend CreateEmulated() => new(IlgpuDevice.Create(emulate: true));

    static IlgpuBackend CreateCuda()
    {
        if (!IlgpuDevice.CudaPresent()) throw new ArgumentException("no CUDA device found; use --device cpu");
        var device = IlgpuDevice.Create();
        if (device.IsCuda) return new IlgpuBackend(device);
        device.Dispose();
        throw new ArgumentException("no CUDA device found; use --device cpu");
    }
}
