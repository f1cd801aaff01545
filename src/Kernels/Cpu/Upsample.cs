// Nearest 2× upsampling on Vector512 (lane shuffles double each row into two output rows) and its 2×2-sum backward.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w)
    {
        UpsampleChecks.Validate("upsample nearest 2x", y, "y", x, "x", planes, h, w);
        float* py = F(y), px = F(x);
        long rows = (long)planes * h, rowsPerItem = Math.Max(1, Chunks.Grain / (5L * w));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 5 * rows * w, item =>
        {
            var lowHalf = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var highHalf = Vector512.Create(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long r = item * rowsPerItem; r < end; r++)
            {
                float* src = px + r * w, top = py + r * 4 * w, bottom = top + 2 * w;   // input row r → output rows 2r, 2r+1
                long j = 0;
                for (; j + 16 <= w; j += 16)
                {
                    var v = Vector512.Load(src + j);
                    var lo = Vector512.Shuffle(v, lowHalf);
                    var hi = Vector512.Shuffle(v, highHalf);
                    Vector512.Store(lo, top + 2 * j);
                    Vector512.Store(hi, top + 2 * j + 16);
                    Vector512.Store(lo, bottom + 2 * j);
                    Vector512.Store(hi, bottom + 2 * j + 16);
                }
                for (; j < w; j++) top[2 * j] = top[2 * j + 1] = bottom[2 * j] = bottom[2 * j + 1] = src[j];
            }
        });
    }

    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w)
    {
        UpsampleChecks.Validate("upsample nearest 2x backward", dy, "dy", dx, "dx", planes, h, w);
        float* pdx = F(dx), pdy = F(dy);
        long rows = (long)planes * h, rowsPerItem = Math.Max(1, Chunks.Grain / (5L * w));
        Chunks.Items((rows + rowsPerItem - 1) / rowsPerItem, 5 * rows * w, item =>
        {
            var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            var odd = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long r = item * rowsPerItem; r < end; r++)
            {
                float* dst = pdx + r * w, top = pdy + r * 4 * w, bottom = top + 2 * w;
                long j = 0;
                if (Avx512F.IsSupported)
                    for (; j + 16 <= w; j += 16)
                    {
                        var s0 = Vector512.Load(top + 2 * j) + Vector512.Load(bottom + 2 * j);             // columns 2j .. 2j+15
                        var s1 = Vector512.Load(top + 2 * j + 16) + Vector512.Load(bottom + 2 * j + 16);   // 2j+16 .. 2j+31
                        var pairs = Avx512F.PermuteVar16x32x2(s0, even, s1) + Avx512F.PermuteVar16x32x2(s0, odd, s1);
                        Vector512.Store(pairs, dst + j);
                    }
                for (; j < w; j++) dst[j] = top[2 * j] + bottom[2 * j] + (top[2 * j + 1] + bottom[2 * j + 1]);
            }
        });
    }
}
