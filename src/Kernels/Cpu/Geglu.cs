// GEGLU on the cpu tier: y = h·gelu(gate) for x = [h | gate] per row, and its backward, with the exact erf GELU.

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim)
    {
        GegluChecks.Validate("geglu", rows, dim, ("y", y, 1), ("x", x, 2));
        float* py = F(y), px = F(x);
        bool wide = UseVector512;
        long rowsPerItem = Math.Max(1, Chunks.Grain / (2L * dim));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 3L * rows * dim, item =>
        {
            long first = item * rowsPerItem, count = Math.Min(rows, first + rowsPerItem) - first;
            if (wide) GegluRows<V512>(py + first * dim, px + first * 2 * dim, count, dim);
            else GegluRows<V256>(py + first * dim, px + first * 2 * dim, count, dim);
        });
    }

    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim)
    {
        GegluChecks.Validate("geglu backward", rows, dim, ("dx", dx, 2), ("dy", dy, 1), ("x", x, 2));
        float* pdx = F(dx), pdy = F(dy), px = F(x);
        bool wide = UseVector512;
        long rowsPerItem = Math.Max(1, Chunks.Grain / (2L * dim));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 5L * rows * dim, item =>
        {
            long first = item * rowsPerItem, count = Math.Min(rows, first + rowsPerItem) - first;
            if (wide) GegluBackwardRows<V512>(pdx + first * 2 * dim, pdy + first * dim, px + first * 2 * dim, count, dim);
            else GegluBackwardRows<V256>(pdx + first * 2 * dim, pdy + first * dim, px + first * 2 * dim, count, dim);
        });
    }

    // y = h·gelu(gate)   y: (rows, dim), x: (rows, 2·dim) = [h | gate]
    static void GegluRows<TV>(float* y, float* x, long rows, int dim) where TV : struct, IVec<TV>
    {
        for (long r = 0; r < rows; r++)
        {
            float* h = x + r * 2 * dim, gate = h + dim, dst = y + r * dim;
            long j = 0;
            for (; j + TV.Count <= dim; j += TV.Count)
                TV.Store(TV.Load(h + j) * GeluActivation.Forward(TV.Load(gate + j)), dst + j);
            if (j < dim)
            {
                long count = dim - j;
                TV.StoreTail(TV.LoadTail(h + j, count) * GeluActivation.Forward(TV.LoadTail(gate + j, count)), dst + j, count);
            }
        }
    }

    // dh = dy·gelu(gate), dgate = dy·h·gelu'(gate)   dx: (rows, 2·dim) = [dh | dgate], dy: (rows, dim), x: (rows, 2·dim)
    static void GegluBackwardRows<TV>(float* dx, float* dy, float* x, long rows, int dim) where TV : struct, IVec<TV>
    {
        for (long r = 0; r < rows; r++)
        {
            float* h = x + r * 2 * dim, gate = h + dim, g = dy + r * dim, dh = dx + r * 2 * dim, dgate = dh + dim;
            for (long j = 0; j < dim; j += TV.Count)
            {
                long count = Math.Min(TV.Count, dim - j);
                bool full = count == TV.Count;
                var vh = full ? TV.Load(h + j) : TV.LoadTail(h + j, count);
                var vg = full ? TV.Load(gate + j) : TV.LoadTail(gate + j, count);
                var vdy = full ? TV.Load(g + j) : TV.LoadTail(g + j, count);
                var phi = VectorMath.NormalCdf(vg, out var gauss);
                var gelu = vg * phi;                                                 // ∂y/∂h = gelu(gate)
                var slope = TV.Fma(vg * gauss, TV.Create(0.39894228f), phi);         // gelu'(gate)
                var rh = vdy * gelu;
                var rg = vdy * vh * slope;                                           // ∂y/∂gate = h·gelu'(gate)
                if (full) { TV.Store(rh, dh + j); TV.Store(rg, dgate + j); }
                else { TV.StoreTail(rh, dh + j, count); TV.StoreTail(rg, dgate + j, count); }
            }
        }
    }
}
