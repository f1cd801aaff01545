// AdamW as one fused pass over param, grad, m and v in the backend's vector width, parallel over chunks; f32 arithmetic; and its 8-bit form.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n)
    {
        s.Validate(param, grad, m, v, n);
        var c = s.Constants();
        float* pp = F(param), pg = F(grad), pm = F(m), pv = F(v);
        bool wide = UseVector512;
        Chunks.For(n, 1 << 15, (start, end) =>
        {
            if (wide) AdamWRange<V512>(pp, pg, pm, pv, start, end, c);
            else AdamWRange<V256>(pp, pg, pm, pv, start, end, c);
        });
    }

    // p, g, m, v: (n) each, updated over [start, end). Compiled optimised on first call: as tier-0 code it ran 13× slower
    // (116 ms a step over 10 M parameters on one core against 8.7 ms) for the first 28 steps, until tiering replaced it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AdamWRange<TV>(float* p, float* g, float* m, float* v, long start, long end, AdamWConstants c) where TV : struct, IVec<TV>
    {
        TV scale = TV.Create(c.GradScale), beta1 = TV.Create(c.Beta1), oneMinusBeta1 = TV.Create(c.OneMinusBeta1),
            beta2 = TV.Create(c.Beta2), oneMinusBeta2 = TV.Create(c.OneMinusBeta2), decay = TV.Create(c.Decay),
            stepSize = TV.Create(c.StepSize), sqrtBc2 = TV.Create(c.SqrtBc2), eps = TV.Create(c.Eps);
        long i = start;
        for (; i + TV.Count <= end; i += TV.Count)
        {
            var gi = TV.Load(g + i) * scale;
            var mi = beta1 * TV.Load(m + i) + oneMinusBeta1 * gi;
            var vi = beta2 * TV.Load(v + i) + oneMinusBeta2 * gi * gi;
            var denom = TV.Sqrt(vi) / sqrtBc2 + eps;
            TV.Store(TV.Load(p + i) * decay - stepSize * mi / denom, p + i);
            TV.Store(mi, m + i);
            TV.Store(vi, v + i);
        }
        for (; i < end; i++)
        {
            float gi = g[i] * c.GradScale;
            m[i] = c.Beta1 * m[i] + c.OneMinusBeta1 * gi;
            v[i] = c.Beta2 * v[i] + c.OneMinusBeta2 * gi * gi;
            p[i] = p[i] * c.Decay - c.StepSize * m[i] / (MathF.Sqrt(v[i]) / c.SqrtBc2 + c.Eps);
        }
    }
}

public sealed unsafe partial class CpuBackend
{
    public void AdamW8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax,
        in AdamWStep s, long n)
    {
        s.Validate8bit(param, grad, m, mMax, v, vMax, n);
        var c = s.Constants();
        float* pp = F(param), pg = F(grad), pmMax = F(mMax), pvMax = F(vMax);
        byte* pm = (byte*)Host(m).Pointer, pv = (byte*)Host(v).Pointer;
        bool wide = UseVector512;
        Chunks.For(DynamicMap.Blocks(n), Chunks.Grain / DynamicMap.BlockSize, (b0, b1) =>
        {
            if (wide) AdamW8bitBlocks<V512>(pp, pg, pm, pmMax, pv, pvMax, n, b0, b1, c);
            else AdamW8bitBlocks<V256>(pp, pg, pm, pmMax, pv, pvMax, n, b0, b1, c);
        });
    }

    // Blocks [b0, b1) of n parameters: dequantise a block's moments into two stack rows, run the f32 AdamW step on them
    // (AdamWRange), take the new absmax, and write the codes back (DynamicMap.CodeTable: a lookup, no search). The
    // lookups are AVX2 gathers, 8 lanes on either vector width; a block's last count % 32 parameters go one by one.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AdamW8bitBlocks<TV>(float* p, float* g, byte* m, float* mMax, byte* v, float* vMax, long n, long b0, long b1,
        AdamWConstants c) where TV : struct, IVec<TV>
    {
        float* mRow = stackalloc float[DynamicMap.BlockSize], vRow = stackalloc float[DynamicMap.BlockSize];
        DynamicMap.CodeTable signedCodes = DynamicMap.CodeTable.Signed, unsignedCodes = DynamicMap.CodeTable.Unsigned;
        fixed (float* signedMap = DynamicMap.Signed, unsignedMap = DynamicMap.Unsigned)
        fixed (byte* signedStart = signedCodes.Start, unsignedStart = unsignedCodes.Start)
        fixed (float* signedMids = signedCodes.Midpoints, unsignedMids = unsignedCodes.Midpoints)
            for (long b = b0; b < b1; b++)
            {
                long start = b * DynamicMap.BlockSize;
                int count = (int)Math.Min(DynamicMap.BlockSize, n - start);
                Dequantise(mRow, m + start, signedMap, mMax[b], count);
                Dequantise(vRow, v + start, unsignedMap, vMax[b], count);
                AdamWRange<TV>(p + start, g + start, mRow, vRow, 0, count, c);
                float mAbs = mMax[b] = AbsMax(mRow, count), vAbs = vMax[b] = AbsMax(vRow, count);
                Quantise(m + start, mRow, mAbs, signedStart, signedMids, count);
                Quantise(v + start, vRow, vAbs, unsignedStart, unsignedMids, count);
            }
    }

    /// <summary>row = map[codes] · scale: (count) each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dequantise(float* row, byte* codes, float* map, float scale, int count)
    {
        int j = 0;
        if (Avx2.IsSupported)
            for (var s = Vector256.Create(scale); j + 8 <= count; j += 8)
                (Avx2.GatherVector256(map, Avx2.ConvertToVector256Int32(codes + j), 4) * s).Store(row + j);
        for (; j < count; j++) row[j] = map[codes[j]] * scale;
    }

    /// <summary>max |row[j]| over (count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float AbsMax(float* row, int count)
    {
        var most = Vector256<float>.Zero;
        int j = 0;
        for (; j + 8 <= count; j += 8) most = Vector256.Max(most, Vector256.Abs(Vector256.Load(row + j)));
        float result = 0f;
        for (int lane = 0; lane < 8; lane++) result = MathF.Max(result, most[lane]);
        for (; j < count; j++) result = MathF.Max(result, MathF.Abs(row[j]));
        return result;
    }

    /// <summary>codes = Quantize(row / absmax) by the code table (0's code when absmax is 0): (count) each. 32 codes at a
    /// time: the bucket's start code by a 4-byte gather from the byte table (hence its padding), masked to its low byte;
    /// the two midpoints after it by two more; code = start + the comparisons (true is −1 per lane, so subtract).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Quantise(byte* codes, float* row, float absmax, byte* start, float* midpoints, int count)
    {
        int j = 0;
        if (Avx2.IsSupported && absmax > 0)
        {
            var scale = Vector256.Create(absmax);
            var low = Vector256.Create(0xFF);
            Vector256<int> Codes(int at)
            {
                var x = Vector256.Load(row + at) / scale;
                var key = Vector256.ShiftRightLogical(x.AsUInt32(), 16).AsInt32();
                var t = Avx2.GatherVector256((int*)start, key, 1) & low;
                return t - Vector256.LessThan(Avx2.GatherVector256(midpoints, t, 4), x).AsInt32()
                         - Vector256.LessThan(Avx2.GatherVector256(midpoints + 1, t, 4), x).AsInt32();
            }
            for (; j + 32 <= count; j += 32)
                Vector256.Narrow(Vector256.Narrow(Codes(j), Codes(j + 8)), Vector256.Narrow(Codes(j + 16), Codes(j + 24))).AsByte().Store(codes + j);
        }
        for (; j < count; j++) codes[j] = DynamicMap.CodeTable.Code(start, midpoints, absmax > 0 ? row[j] / absmax : 0f);
    }
}
