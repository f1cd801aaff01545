// The ILGPU context and accelerator of the CUDA tier: a CUDA GPU when one is present, else ILGPU's CPU emulator (tests only).
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>Owns one Context and one Accelerator. The emulator is the "Nvidia" CPU device (warp 32, groups up to 1024
/// threads) so kernels run with their real group sizes; it costs microseconds per thread and is never a fast path.</summary>
public sealed class IlgpuDevice : IDisposable
{
    public Context Context { get; }
    public Accelerator Accelerator { get; }
    public bool IsCuda => Accelerator is CudaAccelerator;

    IlgpuDevice(Context context, Accelerator accelerator)
    {
        Context = context;
        Accelerator = accelerator;
    }

    /// <summary>The first CUDA device, or the CPU emulator when there is none (or when emulate is set). profiling enables
    /// AcceleratorStream.AddProfilingMarker (CUDA events on a GPU), which perf's `device` command times kernels with.</summary>
    public static IlgpuDevice Create(bool emulate = false, bool profiling = false)
    {
        var context = Context.Create(b =>
        {
            b.Cuda().CPU(CPUDeviceKind.Nvidia).EnableAlgorithms();
            if (profiling) b.Profiling();
        });
        Accelerator accelerator = !emulate && context.GetCudaDevices().Count > 0
            ? context.CreateCudaAccelerator(0)
            : context.CreateCPUAccelerator(0);
        return new IlgpuDevice(context, accelerator);
    }

    public static bool CudaPresent()
    {
        using var context = Context.Create(b => b.Cuda());
        return context.GetCudaDevices().Count > 0;
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
