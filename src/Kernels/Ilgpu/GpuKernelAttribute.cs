// Marks a static method as an ILGPU kernel of the CUDA tier: its name, and whether it is implicitly or explicitly grouped.
namespace DreamBooth.Kernels.Ilgpu;

/// <summary>Implicit kernels take an Index1D first and run one thread per element; explicit kernels take a KernelConfig
/// and use Grid/Group indices, shared memory and barriers. The PTX check compiles every method that carries this.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class GpuKernelAttribute(string name, bool explicitlyGrouped = false) : Attribute
{
    public string Name { get; } = name;
    public bool ExplicitlyGrouped { get; } = explicitlyGrouped;
}
