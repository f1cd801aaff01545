// The fast managed CPU tier: Vector512/Vector256 SIMD and Parallel.For over cores; one partial file per op.
namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend : HostBackend, IBackend
{
    public override string Name => "cpu";

    float* F(DeviceBuffer buffer) => (float*)Host(buffer).Pointer;
    float* FOrNull(DeviceBuffer? buffer) => buffer == null ? null : F(buffer);
}
