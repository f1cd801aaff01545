// Creates a backend by name: "reference" (scalar oracle) or "cpu" (fast SIMD).
namespace DreamBooth.Kernels;

public static class Backends
{
    public static readonly string[] Names = ["reference", "cpu"];

    public static IBackend Create(string name) => name switch
    {
        "reference" => new Reference.ReferenceBackend(),
        "cpu" => new Cpu.CpuBackend(),
        _ => throw new ArgumentException($"unknown backend '{name}'; expected one of: {string.Join(", ", Names)}"),
    };
}
