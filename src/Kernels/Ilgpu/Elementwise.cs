// CUDA-tier kernels for flat f32 buffers: fill, scale, axpy — one thread per element.
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public static class ElementwiseKernels
{
    [GpuKernel("fill_f32")]
    public static void Fill(Index1D i, ArrayView<float> y, float value) => y[i] = value;                 // y (n)

    [GpuKernel("scale_f32")]
    public static void Scale(Index1D i, ArrayView<float> y, ArrayView<float> x, float alpha) => y[i] = alpha * x[i];   // y, x (n)

    [GpuKernel("axpy_f32")]
    public static void Axpy(Index1D i, ArrayView<float> y, ArrayView<float> x, float alpha) => y[i] += alpha * x[i];   // y, x (n)
}
