// CUDA-tier MSE loss and SumSquares as a deterministic two-level block reduction, and the MSE backward.
using ILGPU.Runtime;
using ILGPU;

namespace DreamBooth.Kernels.Ilgpu;

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>? _mseFinish;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>? _msePartial;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.BackwardArgs>? _mseBackward;

    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n)
    {
        ReduceChecks.ValidateSumSquares(result, x, n);
        var vx = F("sum squares", x);
        TwoLevelSum(F("sum squares", result), vx, vx, MseLossKernels.Args.SumSquares(n), n);   // b is not read
    }

    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n)
    {
        MseLossChecks.Validate("mse loss", loss, "loss", 1, a, b, n);
        TwoLevelSum(F("mse loss", loss), F("mse loss", a), F("mse loss", b), MseLossKernels.Args.Mse(n), n);
    }

    /// <summary>Partials per group into pooled scratch, then one group folds them: deterministic, no atomics.</summary>
    void TwoLevelSum(ArrayView<float> result, ArrayView<float> a, ArrayView<float> b, MseLossKernels.Args args, long n)
    {
        _msePartial ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Partial);
        _mseFinish ??= Acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, MseLossKernels.Args>(MseLossKernels.Finish);
        using var partials = Scratch(MseLossKernels.Groups(n));
        _msePartial(MseLossKernels.PartialConfig(n), partials.F32, a, b, args);
        _mseFinish(MseLossKernels.FinishConfig, result, partials.F32, args);
    }

    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n)
    {
        const string name = "mse loss backward";
        MseLossChecks.Validate(name, da, "da", n, a, b, n);
        _mseBackward ??= Acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, MseLossKernels.BackwardArgs>(MseLossKernels.Backward);
        _mseBackward(Count(name, n), F(name, da), F(name, a), F(name, b), MseLossKernels.BackwardArgs.From(gradLoss, n));
    }
}

/// <summary>
/// Level 1 (Partial): G groups of 256 threads; thread t of the grid sums (a[k] − b[k])² (or a[k]² for SumSquares) over
/// k = t, t + 256G, ... (coalesced), the group reduces its 256 sums by warp shuffles and one shared slot per warp, and
/// writes partials[group]. Level 2 (Finish): one group of 256 sums the G partials the same way and writes
/// scale·total (1/n for the mean). G depends only on n, and every sum has a fixed order, so the result is identical
/// on every run (no atomics). The backward is one thread per element. n below 2^31 per launch.
/// </summary>
public static class MseLossKernels
{
    const int Threads = 256, MaxGroups = 1024;

    public readonly record struct Args(int N, int HasB, float Scale)
    {
        public static Args Mse(long n) => new(CheckedN(n), 1, (float)(1.0 / n));
        public static Args SumSquares(long n) => new(CheckedN(n), 0, 1f);
        static int CheckedN(long n) => n is > 0 and < int.MaxValue ? (int)n : throw new ArgumentException($"mse/sum squares: n={n} out of range");
    }

    /// <summary>The number of level-1 groups (the length of the partials buffer) for n elements: about 4 elements per
    /// thread for small n, at most 1024 groups.</summary>
    public static int Groups(long n) => (int)Math.Clamp((n + Threads * 4 - 1) / (Threads * 4), 1, MaxGroups);

    public static KernelConfig PartialConfig(long n) => new(Groups(n), Threads);
    public static KernelConfig FinishConfig => new(1, Threads);

    [GpuKernel("mse_partial_f32", explicitlyGrouped: true)]
    public static void Partial(ArrayView<float> partials, ArrayView<float> a, ArrayView<float> b, Args p) // partials (Groups(n)) a, b (n)
    {
        float sum = 0f;
        for (int k = Grid.GlobalIndex.X; k < p.N; k += Grid.DimX * Group.DimX)
        {
            float d = p.HasB != 0 ? a[k] - b[k] : a[k];
            sum += d * d;
        }
        sum = RowReduce.Sum(SharedMemory.Allocate<float>(RowReduce.MaxWarps), sum);
        if (Group.IdxX == 0) partials[Grid.IdxX] = sum;
    }

    [GpuKernel("mse_finish_f32", explicitlyGrouped: true)]
    public static void Finish(ArrayView<float> result, ArrayView<float> partials, Args p) // result (1) partials (Groups(n))
    {
        float sum = 0f;
        for (int k = Group.IdxX; k < partials.Length; k += Group.DimX) sum += partials[k];
        sum = RowReduce.Sum(SharedMemory.Allocate<float>(RowReduce.MaxWarps), sum);
        if (Group.IdxX == 0) result[0] = p.Scale * sum;
    }

    public readonly record struct BackwardArgs(float Scale)
    {
        public static BackwardArgs From(float gradLoss, long n) => new((float)(2.0 * gradLoss / n));
    }

    [GpuKernel("mse_backward_f32")]
    public static void Backward(Index1D i, ArrayView<float> da, ArrayView<float> a, ArrayView<float> b, BackwardArgs p) => // (n) each
        da[i] = p.Scale * (a[i] - b[i]);                                          // gradLoss·2(a − b)/n
}
