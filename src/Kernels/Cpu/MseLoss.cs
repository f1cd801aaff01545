// Mean squared error on Vector512: mean (a−b)² summed in double with a fixed split, and its gradient 2(a−b)/n.
using System.Runtime.Intrinsics;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n)
    {
        MseLossChecks.Validate("mse loss", loss, "loss", 1, a, b, n);
        *F(loss) = (float)(Total<SquaredDifferenceTerm>(F(a), F(b), n) / n);
    }

    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n)
    {
        MseLossChecks.Validate("mse loss backward", da, "da", n, a, b, n);
        float* pda = F(da), pa = F(a), pb = F(b);
        float k = (float)(2.0 * gradLoss / n);
        Chunks.For(n, (start, end) =>
        {
            float* d = pda + start, x = pa + start, t = pb + start;
            long count = end - start, i = 0;
            var vk = Vector512.Create(k);
            for (; i + 16 <= count; i += 16) Vector512.Store(vk * (Vector512.Load(x + i) - Vector512.Load(t + i)), d + i);
            for (; i < count; i++) d[i] = k * (x[i] - t[i]);
        });
    }
}
