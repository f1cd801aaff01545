// GEGLU on Vector512: y = h·gelu(gate) for x = [h | gate] per row, and its backward, with the exact erf GELU.
using System.Runtime.Intrinsics;
using DreamBooth.Kernels.Reference;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        GegluReference.Validate("geglu", rows, dim, ("y", y, 1), ("x", x, 2));
        float* py = F(y), px = F(x);
        long rowsPerItem = Math.Max(1, Chunks.Grain / (2L * dim));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 3L * rows * dim, item =>
        {
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long r = item * rowsPerItem; r < end; r++)
            {
                float* h = px + r * 2 * dim, gate = h + dim, dst = py + r * dim;
                long j = 0;
                for (; j + 16 <= dim; j += 16)
                    Vector512.Store(Vector512.Load(h + j) * GeluActivation.Forward(Vector512.Load(gate + j)), dst + j);
                if (j < dim)
                {
                    long count = dim - j;
                    Chunks.StoreTail(dst + j, Chunks.LoadTail(h + j, count) * GeluActivation.Forward(Chunks.LoadTail(gate + j, count)), count);
                }
            }
        });
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        GegluReference.Validate("geglu backward", rows, dim, ("dx", dx, 2), ("dy", dy, 1), ("x", x, 2));
        float* pdx = F(dx), pdy = F(dy), px = F(x);
        long rowsPerItem = Math.Max(1, Chunks.Grain / (2L * dim));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 5L * rows * dim, item =>
        {
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long r = item * rowsPerItem; r < end; r++)
            {
                float* h = px + r * 2 * dim, gate = h + dim, g = pdy + r * dim, dh = pdx + r * 2 * dim, dgate = dh + dim;
                for (long j = 0; j < dim; j += 16)
                {
                    long count = Math.Min(16, dim - j);
                    bool full = count == 16;
                    var vh = full ? Vector512.Load(h + j) : Chunks.LoadTail(h + j, count);
                    var vg = full ? Vector512.Load(gate + j) : Chunks.LoadTail(gate + j, count);
                    var vdy = full ? Vector512.Load(g + j) : Chunks.LoadTail(g + j, count);
                    var phi = VectorMath.NormalCdf(vg, out var gauss);
                    var gelu = vg * phi;                                                        // ∂y/∂h = gelu(gate)
                    var slope = Vector512.FusedMultiplyAdd(vg * gauss, Vector512.Create(0.39894228f), phi);   // gelu'(gate)
                    var rh = vdy * gelu;
                    var rg = vdy * vh * slope;                                                  // ∂y/∂gate = h·gelu'(gate)
                    if (full) { Vector512.Store(rh, dh + j); Vector512.Store(rg, dgate + j); }
                    else { Chunks.StoreTail(dh + j, rh, count); Chunks.StoreTail(dgate + j, rg, count); }
                }
            }
        });
    }
}
