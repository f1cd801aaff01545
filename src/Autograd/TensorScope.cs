// TensorScope: deterministic disposal of every tensor (and tape entry) created while the scope is open.
namespace DreamBooth.Autograd;

/// <summary>
/// <code>
/// using (var step = new TensorScope())
/// {
///     var loss = model.Forward(batch);   // activations, saved tensors, gradients of op outputs: all tracked
///     loss.Backward();
///     optimizer.Step();
/// }                                      // all freed here, and the tape entries recorded inside are dropped
/// </code>
/// Scopes nest per thread. <see cref="Keep"/> hands a tensor to the enclosing scope (or to the caller when there is
/// none) so a result can outlive the scope that computed it; a tensor still on the tape cannot leave (its backward
/// would read freed tensors).
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] static TensorScope? _current;

    readonly TensorScope? _parent;
    readonly List<Tensor> _tensors = [];
    readonly long _tapeMark;
    bool _disposed;

    public TensorScope()
    {
        _parent = _current;
        _current = this;
        _tapeMark = Tape.Mark;
    }

    /// <summary>The innermost open scope on this thread, if any.</summary>
    public static TensorScope? Current => _current;

    internal static void Track(Tensor t) => _current?._tensors.Add(t);

    /// <summary>Until Dispose, new tensors go to the enclosing scope instead of this one: a checkpointed block's
    /// backward replays inside its recompute scope, but the gradients it hands out must outlive that scope.</summary>
    internal IDisposable TrackInParent()
    {
        if (_current != this) throw new InvalidOperationException("scope: only the innermost scope can redirect tracking");
        _current = _parent;
        return new Return(this);
    }

    sealed class Return(TensorScope scope) : IDisposable
    {
        public void Dispose() => _current = scope;
    }

    /// <summary>Moves <paramref name="t"/> to the enclosing scope (or to nobody: the caller disposes it).</summary>
    public Tensor Keep(Tensor t)
    {
        if (!t.IsLeaf && t.RequiresGrad)
            throw new InvalidOperationException($"scope: cannot keep {t}: its backward needs tensors this scope frees; " +
                                                "run backward inside the scope, or keep F.Copy(t.Detach())");
        if (!t.OwnsStorage)
            throw new InvalidOperationException($"scope: cannot keep {t}: it is a view of a buffer this scope may free; keep F.Copy(t)");
        if (!_tensors.Remove(t)) throw new InvalidOperationException($"scope: {t} does not belong to this scope");
        _parent?._tensors.Add(t);
        return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        if (_current != this) throw new InvalidOperationException("scope: scopes must be disposed innermost first");
        _disposed = true;
        _current = _parent;
        Tape.Truncate(_tapeMark);
        for (int i = _tensors.Count - 1; i >= 0; i--) _tensors[i].Dispose();
        _tensors.Clear();
    }
}
