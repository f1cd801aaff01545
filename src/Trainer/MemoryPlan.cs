// Before training: the memory a configuration needs (weights, gradients, AdamW moments, activations) against what is free.
using DreamBooth.Autograd;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Layers;

namespace DreamBooth.Trainer;

/// <summary>Bytes by kind; Activations is an estimate of the peak of one micro-batch's forward and backward.</summary>
public sealed record MemoryNeeds(long Weights, long Gradients, long Moments, long Activations)
{
    public long Total => Weights + Gradients + Moments + Activations;
}

public static class MemoryPlan
{
    /// <summary>
    /// Refuses a run that cannot fit, before any image is decoded or weight allocated: the weights (counted from the
    /// configs), the gradients and AdamW moments of what trains (AdamW8bit's estimate with --use_8bit_adam), the decoded
    /// training images, and the activations of one micro-batch must fit into the memory that is free (MemAvailable of
    /// /proc/meminfo on the host tiers; a GPU's allocator reports its own failures).
    /// </summary>
    public static MemoryNeeds Check(string backendName, UNet2DConditionConfig unet, ClipTextConfig textEncoder, long vaeParameters,
        TrainOptions o, int rows, int latentSide, long images, int resolution)
    {
        var (unetModel, textModel) = (new Models.UNet.UNet2DConditionModel(unet), new Models.Clip.ClipTextModel(textEncoder));
        long unetParameters = unetModel.ParameterCount(), textParameters = textModel.ParameterCount();
        long trainable = o.UseLora   // only the adapters train (counted on the unallocated models), the weights stay frozen
            ? LoraNetwork.Attach(unetModel, LoraNetwork.UnetTargets, o.Rank, 1).ParameterCount()
              + (o.TrainTextEncoder ? LoraNetwork.Attach(textModel, LoraNetwork.TextEncoderTargets, o.Rank, 1).ParameterCount() : 0)
            : unetParameters + (o.TrainTextEncoder ? textParameters : 0);
        long adapters = o.UseLora ? trainable : 0;
        var needs = new MemoryNeeds(4 * (unetParameters + textParameters + vaeParameters + adapters) + images * 3L * resolution * resolution * 4,
            4 * trainable, o.Use8bitAdam ? AdamW8bit.EstimatedStateBytes(trainable) : 8 * trainable,
            UNetActivations(unet, rows, latentSide, o.GradientCheckpointing)
            + (o.TrainTextEncoder ? TextEncoderActivations(textEncoder, rows, 77, o.GradientCheckpointing) : 0));
        long? free = backendName is "cpu" or "reference" ? HostAvailable() : null;
        Console.Error.WriteLine($"memory: weights and images {MiB(needs.Weights)}, gradients {MiB(needs.Gradients)}, AdamW moments " +
                                $"{MiB(needs.Moments)}, activations ≈ {MiB(needs.Activations)} (estimate)" + (free is { } f ? $"; {MiB(f)} free" : ""));
        if (free is { } available && needs.Total > available)
            throw new InsufficientMemoryException(
                $"this run needs about {MiB(needs.Total)} of memory (weights, gradients, AdamW moments, and the activations of {rows} rows " +
                $"at {resolution}×{resolution}) but {MiB(available)} is free: lower --train_batch_size or --resolution, or add " +
                "--gradient_checkpointing");
        return needs;
    }

    /// <summary>
    /// f32 activations the tape keeps for one forward of the UNet, counted per block from the config: a resnet keeps about
    /// 10 tensors of its output's size (norms, activations, convolutions, the skip), a transformer about 30 of its input's
    /// (norms, projections, attention outputs and statistics, the 8C-wide feed-forward); flash attention keeps no score
    /// matrix. With checkpointing only the blocks' outputs stay, plus one block's recomputed activations at a time.
    /// </summary>
    public static long UNetActivations(UNet2DConditionConfig c, int rows, int side, bool checkpointing)
    {
        long total = 0, outputs = 0, largest = 0;
        void Block(long elements, int tensors)
        {
            total += tensors * elements;
            outputs += elements;
            largest = Math.Max(largest, tensors * elements);
        }
        for (int level = 0; level < c.BlockOutChannels.Length; level++)
        {
            long s = (long)(side >> level) * (side >> level) * rows * c.BlockOutChannels[level];
            bool attention = c.DownBlockTypes[level].StartsWith("CrossAttn", StringComparison.Ordinal);
            int blocks = c.LayersPerBlock + c.LayersPerBlock + 1;   // down resnets, then up resnets (one more)
            for (int b = 0; b < blocks; b++)
            {
                Block(2 * s, 10);   // the up resnets read the concatenated skip: about twice the width
                if (attention) Block(s, 30 * c.TransformerLayersPerBlock);
            }
        }
        long deepest = (long)(side >> (c.BlockOutChannels.Length - 1)) * (side >> (c.BlockOutChannels.Length - 1)) * rows * c.BlockOutChannels[^1];
        Block(deepest, 10);
        Block(deepest, 30 * c.TransformerLayersPerBlock);
        Block(deepest, 10);
        return 4 * (checkpointing ? outputs + largest : total);
    }

    /// <summary>Per layer about 16 tensors of (rows, L, D): two norms, q/k/v, attention, the 4D-wide MLP.</summary>
    public static long TextEncoderActivations(ClipTextConfig c, int rows, int tokens, bool checkpointing)
    {
        long layer = 16L * rows * tokens * c.HiddenSize;
        return 4 * (checkpointing ? c.NumHiddenLayers * (long)rows * tokens * c.HiddenSize + layer : c.NumHiddenLayers * layer);
    }

    static long? HostAvailable()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }

    static string MiB(long bytes) => $"{bytes / (1024.0 * 1024):F0} MiB";
}
