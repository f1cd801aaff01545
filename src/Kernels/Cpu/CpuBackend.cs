// The fast managed CPU tier: Vector512/Vector256 SIMD and parallel loops over the cores (Cores.For); one partial file per op.
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

/// <param name="vector512">Whether the kernels written over IVec (attention) may use Vector512 where the hardware runs it;
/// false keeps them on Vector256, so an AVX-512 machine can test the path AVX2 machines take.</param>
public sealed unsafe partial class CpuBackend(bool vector512 = true) : HostBackend, IBackend
{
    public override string Name => "cpu";

    /// <summary>Vector512 is used only where AVX-512 runs it: .NET's software Vector512 runs at 40 % of Vector256.</summary>
    public bool UseVector512 { get; } = vector512 && Vector512.IsHardwareAccelerated;

    float* F(DeviceBuffer buffer) => (float*)Host(buffer).Pointer;
    float* FOrNull(DeviceBuffer? buffer) => buffer == null ? null : F(buffer);
}
