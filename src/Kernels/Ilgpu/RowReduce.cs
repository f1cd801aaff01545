// Group-wide reductions shared by the CUDA kernels (norms, softmax, losses, bias gradients, 8-bit absmax): warp shuffles, then one shared slot per warp.
using ILGPU;
using ILGPU.Algorithms;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>
/// Reductions over the threads of one 1-D group (size a multiple of 32, at most 1024): each warp folds its lanes with
/// Warp.ShuffleDown, lane 0 of each warp writes its partial to the caller's shared scratch, and after one barrier every
/// warp folds the per-warp partials again, so all threads end with the group's result (lane 0's, broadcast by shuffle).
/// The order of additions is fixed by the group size, so results are deterministic. Every thread of the group must call.
/// </summary>
public static class RowReduce
{
    /// <summary>Most warps in a group (1024 threads / 32): the scratch holds this many floats per reduced quantity.</summary>
    public const int MaxWarps = 32;
    /// <summary>The most threads a row or (n, g) group is given; short rows get fewer, rounded up to a whole warp.</summary>
    public const int MaxThreads = 256;

    /// <summary>Threads for a group that reduces `count` elements: whole warps, at least one, at most MaxThreads.</summary>
    public static int GroupSize(long count) => (int)Math.Min(MaxThreads, Math.Max(32, (count + 31) / 32 * 32));

    public readonly struct Pair(float a, float b)
    {
        public readonly float A = a, B = b;
    }

    /// <summary>The group's sum of a.</summary>
    public static float Sum(ArrayView<float> scratch, float a) // scratch (MaxWarps), shared
    {
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1) a += Warp.ShuffleDown(a, off);
        if (Warp.LaneIdx == 0) scratch[Warp.WarpIdx] = a;
        Group.Barrier();
        int warps = Group.DimX / Warp.WarpSize;
        a = Warp.LaneIdx < warps ? scratch[Warp.LaneIdx] : 0f;
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1) a += Warp.ShuffleDown(a, off);
        a = Warp.Shuffle(a, 0);
        Group.Barrier(); // the caller may reuse the scratch
        return a;
    }

    /// <summary>Statistics of x[start, start + count) for the norms, in one pass over d = x − shift (a shift near the
    /// values keeps E[d²] − E[d]² from cancelling): A = mean of d, B = 1/√(biased variance + eps), in every thread.</summary>
    public static Pair ShiftedMoments(ArrayView<float> scratch, ArrayView<float> x, int start, int count, float shift, float eps) // scratch (2·MaxWarps), shared
    {
        float s1 = 0f, s2 = 0f;
        for (int e = Group.IdxX; e < count; e += Group.DimX)
        {
            float d = x[start + e] - shift;
            s1 += d;
            s2 += d * d;
        }
        var sums = Sum2(scratch, s1, s2);
        float mu = sums.A / count;
        return new(mu, XMath.Rsqrt(XMath.Max(sums.B / count - mu * mu, 0f) + eps));
    }

    /// <summary>The group's sums of a and of b, side by side.</summary>
    public static Pair Sum2(ArrayView<float> scratch, float a, float b) // scratch (2·MaxWarps), shared
    {
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
        {
            a += Warp.ShuffleDown(a, off);
            b += Warp.ShuffleDown(b, off);
        }
        if (Warp.LaneIdx == 0)
        {
            scratch[Warp.WarpIdx] = a;
            scratch[MaxWarps + Warp.WarpIdx] = b;
        }
        Group.Barrier();
        int warps = Group.DimX / Warp.WarpSize;
        a = Warp.LaneIdx < warps ? scratch[Warp.LaneIdx] : 0f;
        b = Warp.LaneIdx < warps ? scratch[MaxWarps + Warp.LaneIdx] : 0f;
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
        {
            a += Warp.ShuffleDown(a, off);
            b += Warp.ShuffleDown(b, off);
        }
        a = Warp.Shuffle(a, 0);
        b = Warp.Shuffle(b, 0);
        Group.Barrier();
        return new(a, b);
    }

    /// <summary>The group's maxima of a and of b, side by side.</summary>
    public static Pair Max2(ArrayView<float> scratch, float a, float b) // scratch (2·MaxWarps), shared
    {
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
        {
            a = XMath.Max(a, Warp.ShuffleDown(a, off));
            b = XMath.Max(b, Warp.ShuffleDown(b, off));
        }
        if (Warp.LaneIdx == 0)
        {
            scratch[Warp.WarpIdx] = a;
            scratch[MaxWarps + Warp.WarpIdx] = b;
        }
        Group.Barrier();
        int warps = Group.DimX / Warp.WarpSize;
        a = Warp.LaneIdx < warps ? scratch[Warp.LaneIdx] : float.NegativeInfinity;
        b = Warp.LaneIdx < warps ? scratch[MaxWarps + Warp.LaneIdx] : float.NegativeInfinity;
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
        {
            a = XMath.Max(a, Warp.ShuffleDown(a, off));
            b = XMath.Max(b, Warp.ShuffleDown(b, off));
        }
        a = Warp.Shuffle(a, 0);
        b = Warp.Shuffle(b, 0);
        Group.Barrier();
        return new(a, b);
    }

    /// <summary>Online softmax statistics: A = running max m, B = Σ exp(x − m). Merges two partials (B = 0 means empty).</summary>
    public static Pair MergeMaxSum(Pair p, Pair q)
    {
        if (q.B == 0f) return p;
        if (p.B == 0f) return q;
        float m = XMath.Max(p.A, q.A);
        return new(m, p.B * XMath.Exp(p.A - m) + q.B * XMath.Exp(q.A - m));
    }

    /// <summary>The group's merged (max, Σ exp(x − max)) from each thread's partial.</summary>
    public static Pair MaxSum(ArrayView<float> scratch, Pair p) // scratch (2·MaxWarps), shared
    {
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
            p = MergeMaxSum(p, new(Warp.ShuffleDown(p.A, off), Warp.ShuffleDown(p.B, off)));
        if (Warp.LaneIdx == 0)
        {
            scratch[Warp.WarpIdx] = p.A;
            scratch[MaxWarps + Warp.WarpIdx] = p.B;
        }
        Group.Barrier();
        int warps = Group.DimX / Warp.WarpSize;
        p = Warp.LaneIdx < warps ? new(scratch[Warp.LaneIdx], scratch[MaxWarps + Warp.LaneIdx]) : new(float.NegativeInfinity, 0f);
        for (int off = Warp.WarpSize / 2; off > 0; off >>= 1)
            p = MergeMaxSum(p, new(Warp.ShuffleDown(p.A, off), Warp.ShuffleDown(p.B, off)));
        p = new(Warp.Shuffle(p.A, 0), Warp.Shuffle(p.B, 0));
        Group.Barrier();
        return p;
    }
}
