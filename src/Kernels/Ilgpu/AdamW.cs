// CUDA-tier AdamW: one thread per parameter of the flat buffer, with the constants every tier shares (AdamWStep.Constants);
// 8-bit AdamW: one group per block of parameters.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWConstants>? _adamw;

    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        const string name = "adamw";
        s.Validate(param, grad, m, v, n);
        _adamw ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWConstants>(AdamWKernels.Step);
        _adamw(Count(name, n), F(name, param), F(name, grad), F(name, m), F(name, v), s.Constants());
    }
}

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>,
        ArrayView<float>, AdamWConstants, int>? _adamw8bit;
    MemoryBuffer1D<float, Stride1D.Dense>? _dynamicMaps;   // AdamWKernels.Maps: uploaded on first use

    public void AdamW8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax,
        in AdamWStep s, long n)
    {
        const string name = "adamw 8-bit";
        s.Validate8bit(param, grad, m, mMax, v, vMax, n);
        if (_dynamicMaps == null)
        {
            _dynamicMaps = Acc.Allocate1D<float>(AdamWKernels.MapsLength);
            _dynamicMaps.View.CopyFromCPU([.. DynamicMap.Signed, .. DynamicMap.Unsigned, .. DynamicMap.SignedMidpoints, .. DynamicMap.UnsignedMidpoints]);
        }
        _adamw8bit ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<byte>,
            ArrayView<float>, ArrayView<float>, AdamWConstants, int>(AdamWKernels.Step8bit);
        int count = Count(name, n);
        _adamw8bit(new KernelConfig(new Index1D((int)DynamicMap.Blocks(count)), new Index1D(DynamicMap.BlockSize)),
            F(name, param), F(name, grad), Buf(name, m).View, F(name, mMax), Buf(name, v).View, F(name, vMax), _dynamicMaps.View, s.Constants(), count);
    }
}

public static class AdamWKernels
{
    [GpuKernel("adamw_f32")]
    public static void Step(Index1D i, ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, // (n) each
        AdamWConstants c)
    {
        float g = grad[i] * c.GradScale;
        float mi = c.Beta1 * m[i] + c.OneMinusBeta1 * g;
        float vi = c.Beta2 * v[i] + c.OneMinusBeta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = param[i] * c.Decay;
        param[i] = p - c.StepSize * mi / (XMath.Sqrt(vi) / c.SqrtBc2 + c.Eps);
    }

    /// <summary>The maps buffer of Step8bit: Signed (256), Unsigned (256), then their midpoints (255 each).</summary>
    public const int MapsLength = 2 * 256 + 2 * 255;
    const int UnsignedAt = 256, SignedMidpointsAt = 512, UnsignedMidpointsAt = 767;

    /// <summary>8-bit AdamW (AdamW8bitReference): one group of BlockSize threads per block, one parameter per thread.
    /// Dequantise, the f32 step of <see cref="Step"/>, the block's two absmax by a group reduction, then each code by a
    /// binary search over the midpoints.</summary>
    [GpuKernel("adamw_8bit_f32", explicitlyGrouped: true)]
    public static void Step8bit(ArrayView<float> param, ArrayView<float> grad, // (n) (n)
        ArrayView<byte> m, ArrayView<float> mMax, ArrayView<byte> v, ArrayView<float> vMax, // (n) (blocks) (n) (blocks)
        ArrayView<float> maps, AdamWConstants c, int n) // (MapsLength)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int block = Grid.IdxX, i = block * Group.DimX + Group.IdxX;
        float mi = 0f, vi = 0f;
        if (i < n)
        {
            float g = grad[i] * c.GradScale;
            mi = c.Beta1 * (maps[(int)m[i]] * mMax[block]) + c.OneMinusBeta1 * g;
            vi = c.Beta2 * (maps[UnsignedAt + v[i]] * vMax[block]) + c.OneMinusBeta2 * g * g;
            float p = param[i] * c.Decay;
            param[i] = p - c.StepSize * mi / (XMath.Sqrt(vi) / c.SqrtBc2 + c.Eps);
        }
        var absmax = RowReduce.Max2(scratch, XMath.Abs(mi), vi);   // every read of mMax and vMax is before its barriers
        if (i < n)
        {
            m[i] = Code(maps, SignedMidpointsAt, absmax.A > 0f ? mi / absmax.A : 0f);
            v[i] = Code(maps, UnsignedMidpointsAt, absmax.B > 0f ? vi / absmax.B : 0f);
        }
        if (Group.IdxX == 0)
        {
            mMax[block] = absmax.A;
            vMax[block] = absmax.B;
        }
    }

    /// <summary>DynamicMap.Quantize: how many of the 255 midpoints at maps[at..] lie strictly below x.</summary>
    static byte Code(ArrayView<float> maps, int at, float x)
    {
        int lo = 0, hi = 255;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (maps[at + mid] < x) lo = mid + 1;
            else hi = mid;
        }
        return (byte)lo;
    }
}
