// CUDA-tier kernels for flat buffers: fill (f32, and raw 32/16-bit patterns for any dtype), scale, axpy — one thread per element.
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public static class ElementwiseKernels
{
    [GpuKernel("fill_f32")]
    public static void Fill(Index1D i, ArrayView<float> y, float value) => y[i] = value;                 // y (n)

    /// <summary>Fill of a 4-byte dtype (i32, or f32 as bits) with a pattern computed on the host (CopyReference.FillBits).</summary>
    [GpuKernel("fill_b32")]
    public static void Fill32(Index1D i, ArrayView<uint> y, uint bits) => y[i] = bits;                  // y (n)

    /// <summary>Fill of a 2-byte dtype (f16, bf16) with the host-rounded (nearest even) bits of the value.</summary>
    [GpuKernel("fill_b16")]
    public static void Fill16(Index1D i, ArrayView<ushort> y, ushort bits) => y[i] = bits;              // y (n)

    [GpuKernel("scale_f32")]
    public static void Scale(Index1D i, ArrayView<float> y, ArrayView<float> x, float alpha) => y[i] = alpha * x[i];   // y, x (n)

    [GpuKernel("axpy_f32")]
    public static void Axpy(Index1D i, ArrayView<float> y, ArrayView<float> x, float alpha) => y[i] += alpha * x[i];   // y, x (n)
}
