// CUDA-tier group normalisation (+ SiLU) over (N, C, HW): one group per (n, g) for statistics and dx, one per channel for dgamma/dbeta.
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNorm;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNormDx;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>? _groupNormParams;

    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int n, int c, int hw, int groups, float eps, bool silu)
    {
        GroupNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, eps);
        const string op = "group norm";
        _groupNorm ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.Forward);
        var args = GroupNormKernels.Args.From(n, c, hw, groups, eps, silu);
        _groupNorm(GroupNormKernels.Config(args), F(op, y), F(op, mean), F(op, rstd), F(op, x), F(op, gamma), F(op, beta), args);
    }

    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu)
    {
        GroupNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, n, c, hw, groups);
        const string op = "group norm backward";
        _groupNormParams ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardParams);
        _groupNormDx ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormKernels.Args>(GroupNormKernels.BackwardDx);
        var args = GroupNormKernels.Args.From(n, c, hw, groups, 0f, silu);
        // Parameter gradients first: they read dy, which dx may overwrite in place.
        _groupNormParams(GroupNormKernels.ParamConfig(args), F(op, dgamma), F(op, dbeta), F(op, dy), F(op, x), F(op, mean), F(op, rstd),
            F(op, gamma), F(op, beta), args);
        _groupNormDx(GroupNormKernels.Config(args), F(op, dx), F(op, dy), F(op, x), F(op, mean), F(op, rstd), F(op, gamma), F(op, beta), args);
    }
}

/// <summary>
/// Semantics of GroupNormReference. The C/G channels × HW elements of one (n, g) are contiguous, so group (n·G + g)
/// strides over them with coalesced loads. Statistics take one pass: sums of d and d² with d = x − x[first of the group]
/// (the shift keeps E[d²] − E[d]² from cancelling), reduced by RowReduce; the affine, and SiLU when Args.Silu is set,
/// are fused into the write of y. Backward: dz = dy, or dy·silu'(z) with z = xhat·gamma + beta recomputed where it is
/// read (an exp per element costs less than storing and re-reading z); group (n, g) reduces Σ dz·gamma and
/// Σ dz·gamma·xhat and writes dx; a second kernel gives each channel a group that reduces Σ dz·xhat and Σ dz over
/// (N, HW) and adds them to dgamma/dbeta (no atomics, deterministic). Silu is launch-uniform: no warp diverges on it.
/// Indices are int: N·C·HW &lt; 2^31 (GroupNormChecks.Validate).
/// </summary>
public static class GroupNormKernels
{
    public readonly record struct Args(int N, int C, int HW, int Groups, int PerGroup, int Count, float Eps, int Silu)
    {
        public static Args From(int n, int c, int hw, int groups, float eps, bool silu) =>
            new(n, c, hw, groups, c / groups, c / groups * hw, eps, silu ? 1 : 0);
    }

    /// <summary>Forward and dx: one group per (n, g), sized to the group's C/G·HW elements.</summary>
    public static KernelConfig Config(in Args a) => new(new Index1D(a.N * a.Groups), new Index1D(RowReduce.GroupSize(a.Count)));

    /// <summary>dgamma/dbeta: one group per channel, sized to the N·HW elements it reduces.</summary>
    public static KernelConfig ParamConfig(in Args a) => new(new Index1D(a.C), new Index1D(RowReduce.GroupSize((long)a.N * a.HW)));

    [GpuKernel("group_norm_f32", explicitlyGrouped: true)]
    public static void Forward(ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, // (N, C, HW) (N, G) (N, G)
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, Args p) // (N, C, HW) (C) (C)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int ng = Grid.IdxX, g = ng % p.Groups;
        int start = ng * p.Count; // (n·C + g·C/G)·HW = (n·G + g)·Count
        float shift = x[start];
        var moments = RowReduce.ShiftedMoments(scratch, x, start, p.Count, shift, p.Eps);
        float mu = moments.A, r = moments.B; // mean of x − shift, 1/√(var + eps)
        if (Group.IdxX == 0)
        {
            mean[ng] = shift + mu;
            rstd[ng] = r;
        }
        // Each thread writes the elements it read: y = z or silu(z), z = (x − mean)·rstd·gamma[c] + beta[c].
        for (int e = Group.IdxX; e < p.Count; e += Group.DimX)
        {
            int ch = g * p.PerGroup + e / p.HW;
            float z = (x[start + e] - shift - mu) * r * gamma[ch] + beta[ch];
            y[start + e] = p.Silu != 0 ? UnaryKernels.Silu(z) : z;
        }
    }

    [GpuKernel("group_norm_backward_dx_f32", explicitlyGrouped: true)]
    public static void BackwardDx(ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> x, // (N, C, HW) ×3
        ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> gamma, ArrayView<float> beta, Args p) // (N, G) (N, G) (C) (C)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int ng = Grid.IdxX, g = ng % p.Groups;
        int start = ng * p.Count;
        float mu = mean[ng], r = rstd[ng];
        float sumD = 0f, sumDX = 0f; // Σ dxhat, Σ dxhat·xhat with dxhat = dz·gamma
        for (int e = Group.IdxX; e < p.Count; e += Group.DimX)
        {
            int ch = g * p.PerGroup + e / p.HW;
            float xhat = (x[start + e] - mu) * r;
            float dxhat = GradPreActivation(dy[start + e], xhat, gamma[ch], beta, ch, p.Silu) * gamma[ch];
            sumD += dxhat;
            sumDX += dxhat * xhat;
        }
        var sums = RowReduce.Sum2(scratch, sumD, sumDX);
        float meanD = sums.A / p.Count, meanDX = sums.B / p.Count;
        for (int e = Group.IdxX; e < p.Count; e += Group.DimX)
        {
            int ch = g * p.PerGroup + e / p.HW;
            float xhat = (x[start + e] - mu) * r;
            float dxhat = GradPreActivation(dy[start + e], xhat, gamma[ch], beta, ch, p.Silu) * gamma[ch];
            dx[start + e] = r * (dxhat - meanD - xhat * meanDX);
        }
    }

    [GpuKernel("group_norm_backward_params_f32", explicitlyGrouped: true)]
    public static void BackwardParams(ArrayView<float> dgamma, ArrayView<float> dbeta, // (C) (C), accumulated
        ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, // (N, C, HW) ×2 (N, G) (N, G)
        ArrayView<float> gamma, ArrayView<float> beta, Args p) // (C) (C)
    {
        var scratch = SharedMemory.Allocate<float>(2 * RowReduce.MaxWarps);
        int ch = Grid.IdxX, g = ch / p.PerGroup;
        int count = p.N * p.HW;
        float gc = gamma[ch];
        float sumDX = 0f, sumD = 0f; // Σ dz·xhat, Σ dz over (N, HW); consecutive threads read consecutive HW positions
        for (int e = Group.IdxX; e < count; e += Group.DimX)
        {
            int n = e / p.HW, at = (n * p.C + ch) * p.HW + e % p.HW, stat = n * p.Groups + g;
            float xhat = (x[at] - mean[stat]) * rstd[stat];
            float d = GradPreActivation(dy[at], xhat, gc, beta, ch, p.Silu);
            sumDX += d * xhat;
            sumD += d;
        }
        var sums = RowReduce.Sum2(scratch, sumDX, sumD);
        if (Group.IdxX == 0)
        {
            dgamma[ch] += sums.A;
            dbeta[ch] += sums.B;
        }
    }

    /// <summary>dz, the gradient at the affine output z = xhat·gammaC + beta[ch]: dy, or dy·silu'(z) (beta read only then).</summary>
    static float GradPreActivation(float dy, float xhat, float gammaC, ArrayView<float> beta, int ch, int silu) =>
        silu != 0 ? dy * UnaryKernels.SiluDerivative(xhat * gammaC + beta[ch]) : dy;
}
