// Where a run is: optimizer steps done, the place in the data order, the micro-batch count that keys the noise, the seed.
using DreamBooth.Kernels;

namespace DreamBooth.Trainer;

/// <summary>
/// Everything that, with the weights and the optimizer state, determines the rest of a run. Every random draw is keyed
/// by (Seed, a counter): the data order of an epoch by the epoch, the noise, timesteps and crops of a micro-batch by
/// MicroStep. So this record is the whole RNG state, and a run resumed from it draws what the uninterrupted run drew.
/// </summary>
/// <param name="Step">optimizer steps completed (diffusers' global_step)</param>
/// <param name="Epoch">the current epoch</param>
/// <param name="Batch">batches of the current epoch already consumed</param>
/// <param name="MicroStep">micro-batches run so far (the noise stream's counter)</param>
public sealed record TrainingState(int Step, int Epoch, int Batch, long MicroStep, ulong Seed);

/// <summary>The shuffled order of an epoch (a DataLoader with shuffle=True): a Fisher-Yates permutation of the dataset
/// driven by the Philox stream (seed, epoch), cut into batches; the last batch of an epoch may be smaller.</summary>
public static class DataOrder
{
    const ulong OrderStream = 0x6f72646572UL;   // "order": keeps the permutation's counters apart from the noise's

    public static int BatchesPerEpoch(int length, int batchSize) => (length + batchSize - 1) / batchSize;

    /// <summary>The dataset indices of batch <paramref name="batch"/> of <paramref name="epoch"/>.</summary>
    public static int[] Batch(ulong seed, int epoch, int batch, int length, int batchSize)
    {
        var order = Enumerable.Range(0, length).ToArray();
        for (int i = length - 1; i > 0; i--)
        {
            var (w, _, _, _) = Philox.StreamBlock(seed ^ OrderStream, (ulong)epoch << 32, length - 1 - i);
            int j = (int)(Philox.ToUniform(w) * (i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        int start = batch * batchSize;
        return order[start..Math.Min(start + batchSize, length)];
    }
}
