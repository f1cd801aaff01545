// The reverse-mode tape: ops append (output, backward) entries; Backward replays them in exact reverse order.
namespace DreamBooth.Autograd;

/// <summary>
/// Reverse-mode automatic differentiation on a list. Every op whose inputs require gradients appends one entry: its
/// output and a closure that, given dLoss/doutput, adds dLoss/dinput into each input's <see cref="Tensor.Grad"/>.
/// Because an op can only use tensors that exist before it, walking the list backwards visits every op after all the
/// ops that consumed its output: by then the output's gradient is complete. One tape per thread.
/// </summary>
public static class Tape
{
    /// <summary>One op on the tape; <paramref name="Id"/> counts every entry ever recorded on this thread, so a
    /// mark stays valid after a backward has removed the entries below it.</summary>
    readonly record struct Entry(long Id, string Op, Tensor Output, Action<Tensor> Backward);

    [ThreadStatic] static List<Entry>? _entries;
    [ThreadStatic] static long _recorded;
    [ThreadStatic] static int _pausedDepth;

    static List<Entry> Entries => _entries ??= [];

    /// <summary>The entries on this thread's tape (tests check that scopes take theirs away).</summary>
    internal static int Count => _entries?.Count ?? 0;

    /// <summary>The id the next entry gets: Replay and Truncate from it reach exactly the entries recorded after now.</summary>
    internal static long Mark => _recorded;

    /// <summary>False inside <see cref="NoGrad"/>: ops then record nothing and their outputs need no gradient.</summary>
    public static bool IsRecording => _pausedDepth == 0;

    /// <summary>Ops inside run without recording (inference, frozen models, optimizer updates).</summary>
    public static IDisposable NoGrad()
    {
        _pausedDepth++;
        return new Resume();
    }

    sealed class Resume : IDisposable
    {
        bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _pausedDepth--;
        }
    }

    /// <summary>Recording on again inside a backward (a checkpointed block's recompute), whatever NoGrad is open;
    /// the previous state comes back on Dispose.</summary>
    internal static IDisposable Recording()
    {
        var restore = new RestoreDepth(_pausedDepth);
        _pausedDepth = 0;
        return restore;
    }

    sealed class RestoreDepth(int depth) : IDisposable
    {
        public void Dispose() => _pausedDepth = depth;
    }

    /// <summary>Whether an op on these inputs must be recorded: the tape is on and some input needs a gradient.</summary>
    public static bool Needs(params ReadOnlySpan<Tensor?> inputs)
    {
        if (!IsRecording) return false;
        foreach (var t in inputs)
            if (t is { RequiresGrad: true }) return true;
        return false;
    }

    /// <summary>
    /// torch.autograd.set_detect_anomaly's check (train --detect_anomaly): every recorded op's output, and every gradient
    /// backward hands an op, is read back and must be finite; the first that is not stops the run with the op's name and
    /// shape. It downloads every tensor, so it is for finding a NaN, not for training.
    /// </summary>
    public static bool DetectAnomaly { get; set; }

    /// <summary>Appends an op: <paramref name="backward"/> receives dLoss/d<paramref name="output"/> (contiguous).</summary>
    public static void Record(string op, Tensor output, Action<Tensor> backward)
    {
        if (DetectAnomaly && !AllFinite(output))
            throw new ArithmeticException($"anomaly: {op} produced a non-finite value in its output {output}");
        output.RequiresGrad = true;
        output.IsLeaf = false;
        Entries.Add(new Entry(_recorded++, op, output, backward));
    }

    /// <summary>
    /// dLoss/d(everything that requires grad), where loss is a one-element tensor and dLoss/dloss = seed (the loss
    /// scale in mixed precision). Gradients of leaves accumulate (+=) into existing ones; gradients of op outputs are
    /// freed once their op's backward has run. The tape is empty afterwards.
    /// </summary>
    public static void Backward(Tensor loss, float seed = 1f)
    {
        if (loss.Length != 1) throw new ArgumentException($"backward: the loss must have one element, not {loss}");
        if (!loss.RequiresGrad) throw new InvalidOperationException($"backward: {loss} does not depend on anything that requires grad");
        var seedGrad = Tensor.Empty(loss.Backend, loss.Shape.ToArray());
        loss.Backend.Fill(seedGrad.Storage, seed);
        Gradients.Accumulate(loss, seedGrad);
        Replay(0);
    }

    /// <summary>Runs the entries recorded since <paramref name="mark"/> backwards and removes them (a checkpointed
    /// block's recompute replays its own entries).</summary>
    internal static void Replay(long mark)
    {
        var entries = Entries;
        using var noGrad = NoGrad();
        string? previous = null;
        while (entries.Count > 0 && entries[^1].Id >= mark)
        {
            var (_, op, output, backward) = entries[^1];
            entries.RemoveAt(entries.Count - 1);
            if (output.Grad is not { } grad) continue;   // this op does not lead to the loss
            if (output.IsDisposed) throw new InvalidOperationException($"backward: the output of {op} was disposed before backward");
            if (DetectAnomaly && !AllFinite(grad))
                throw new ArithmeticException($"anomaly: the gradient of {op}'s output {output} is non-finite" +
                                              (previous is null ? " (the loss scale or the seed gradient)" : $" after the backward of {previous}"));
            previous = op;
            backward(grad);
            output.Grad = null;                             // op outputs do not keep gradients
            grad.Dispose();
        }
    }

    static bool AllFinite(Tensor t)
    {
        using var noGrad = NoGrad();
        return t.ToArray().All(float.IsFinite);
    }

    /// <summary>Drops the entries recorded since <paramref name="mark"/> (their tensors are being freed).</summary>
    internal static void Truncate(long mark)
    {
        if (_entries is not { } e) return;
        int keep = e.Count;
        while (keep > 0 && e[keep - 1].Id >= mark) keep--;
        e.RemoveRange(keep, e.Count - keep);
    }
}
