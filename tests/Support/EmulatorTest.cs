// Base of the CUDA-tier kernel tests: one ILGPU CPU-emulator device per fixture, and uploads of test data.
using DreamBooth.Kernels.Ilgpu;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

public abstract class EmulatorTest
{
    IlgpuDevice _device = null!;
    protected Accelerator Acc => _device.Accelerator;

    [OneTimeSetUp] public void CreateDevice() => _device = IlgpuDevice.Create(emulate: true);
    [OneTimeTearDown] public void DisposeDevice() => _device.Dispose();

    /// <summary>The values rounded to f32 in a new device buffer (the caller disposes it).</summary>
    protected MemoryBuffer1D<float, Stride1D.Dense> Upload(double[] values) => Acc.Allocate1D(TestData.ToFloat(values));
}
