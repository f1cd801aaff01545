// Gradient checkpointing: a block's activations are dropped after its forward and recomputed during backward.
namespace DreamBooth.Autograd;

/// <summary>
/// <code>
/// h = Checkpoint.Run(t => block.Forward(t[0], t[1]), h, temb);
/// </code>
/// The forward runs without recording inside its own scope, so every intermediate of the block is freed at once and
/// only a copy of the output stays. One tape entry stands for the whole block. When backward reaches it, the block
/// runs again with recording on, on detached views of the same inputs, and its own entries are replayed right there,
/// then its activations are freed: at any time only one checkpointed block's activations are alive.
/// The gradients are bit-for-bit those of the plain block: the recompute gives identical values (deterministic
/// kernels, counter-based random numbers, the autocast mode of the forward restored), its entries replay in the same
/// order, and each detached input starts from its original's gradient buffer, so contributions from inside the block
/// add onto those from later ops in the same order as without checkpointing. Parameters used inside the block
/// accumulate into their flat gradients as usual. The block must be a pure function of its inputs, its parameters and
/// fixed random streams. It runs twice, so a checkpointed step costs about one extra forward of the block.
/// </summary>
public static class Checkpoint
{
    public static Tensor Run(Func<Tensor[], Tensor> block, params Tensor[] inputs)
    {
        if (!Tape.IsRecording) return block(inputs);
        var autocast = Autocast.ComputeType;
        Tensor output;
        using (var scope = new TensorScope())
        using (Tape.NoGrad())
            output = scope.Keep(F.Copy(block(inputs)));

        // The entry is recorded even when nothing inside needs a gradient (parameters are invisible from here);
        // its backward then finds the recomputed output off the tape and does nothing.
        Tape.Record("checkpoint", output, dy =>
        {
            using var recompute = new TensorScope();
            var detached = new Tensor[inputs.Length];      // one detached view per distinct input
            for (int i = 0; i < inputs.Length; i++)
            {
                int first = Array.FindIndex(inputs, x => ReferenceEquals(x, inputs[i]));
                if (first < i) { detached[i] = detached[first]; continue; }
                detached[i] = inputs[i].Detach();
                detached[i].RequiresGrad = inputs[i].RequiresGrad;
                detached[i].Grad = inputs[i].Grad;         // add onto what later ops contributed, in the plain order
            }

            long mark = Tape.Mark;
            Tensor y;
            using (Tape.Recording())
            using (Autocast.Enable(autocast ?? Kernels.DType.F32))
                y = block(detached);
            if (!y.RequiresGrad) return;

            using (recompute.TrackInParent())              // the gradients handed out outlive the recompute
            {
                var seed = Tensor.EmptyLike(dy);
                dy.Backend.Copy(seed.Storage, dy.Storage);
                Gradients.Accumulate(y, seed);
                Tape.Replay(mark);
                for (int i = 0; i < inputs.Length; i++)
                    if (inputs[i].RequiresGrad) inputs[i].Grad = detached[i].Grad;
            }
        });
        return output;
    }
}
