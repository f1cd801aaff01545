// CUDA-tier kernels for flat buffers: fill (f32, and raw 32/16-bit patterns for any dtype), scale, axpy — one thread per element.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, float>? _scale, _axpy;
    Action<Index1D, ArrayView<uint>, uint>? _fill32;
    Action<Index1D, ArrayView<ushort>, ushort>? _fill16;

    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("scale", y, x, n);
        _scale ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Scale);
        _scale(Count("scale", n), F("scale", y), F("scale", x), alpha);
    }

    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n)
    {
        BinaryChecks.ValidateScaled("axpy", y, x, n);
        _axpy ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.Axpy);
        _axpy(Count("axpy", n), F("axpy", y), F("axpy", x), alpha);
    }

    public void Fill(DeviceBuffer y, float value)
    {
        CopyChecks.ValidateFill(y);
        var buffer = Buf("fill", y);
        if (y.Length == 0) return;
        uint bits = HalfPrecision.FillBits(y.DType, value);
        int n = Count("fill", y.Length);
        if (y.DType.Size() == 4)
        {
            _fill32 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, uint>(ElementwiseKernels.Fill32);
            _fill32(n, buffer.View.Cast<uint>(), bits);
        }
        else
        {
            _fill16 ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ushort>(ElementwiseKernels.Fill16);
            _fill16(n, buffer.U16, (ushort)bits);
        }
    }
}

public static class ElementwiseKernels
{
    [GpuKernel("fill_f32")]
    public static void Fill(Index1D i, ArrayView<float> y, float value) => y[i] = value;                 // y (n)

    /// <summary>Fill of a 4-byte dtype (i32, or f32 as bits) with a pattern computed on the host (HalfPrecision.FillBits).</summary>
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
