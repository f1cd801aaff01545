// Creates a backend by name: "reference" (scalar oracle, Reference/), "cpu" (fast SIMD, Cpu/) or "cuda" (the ILGPU kernels
// of Ilgpu/ on the first CUDA GPU): the one place where a device name meets its folder.
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

    /// <summary>Whether a CUDA GPU (and its driver) is present, so that "cuda" can be created.</summary>
    public static bool CudaPresent() => IlgpuDevice.CudaPresent();

    /// <summary>"cuda" when a CUDA GPU is present, else "cpu".</summary>
    public static IBackend Auto() => Create(CudaPresent() ? "cuda" : "cpu");

    /// <summary>The CUDA tier on ILGPU's CPU emulator: the same kernels, slowly, on any machine (tests only).</summary>
    public static IlgpuBackend CreateEmulated() => new(IlgpuDevice.Create(emulate: true));

    static IlgpuBackend CreateCuda()
    {
        if (!CudaPresent()) throw new ArgumentException("no CUDA device found; use --device cpu");
        var device = IlgpuDevice.Create();
        if (device.IsCuda) return new IlgpuBackend(device);
        device.Dispose();
        throw new ArgumentException("no CUDA device found; use --device cpu");
    }
}
