// The Cpu tier's scratch memory: per-thread, aligned native buffers in named slots, reused across calls.
using System.Runtime.InteropServices;

namespace DreamBooth.Kernels.Cpu;

/// <summary>Per-thread scratch buffers (64-byte aligned native memory), grown on demand and kept for the thread's life,
/// so steady-state calls allocate nothing. Slots: the GEMM's packed operands (a task's own, or panels shared by all
/// cores), depth-split partial sums and the rows of a computed operand, then the callers' (conv columns, a batch's
/// images side by side, Winograd's transforms, broadcast terms, a padded input and pointers to its shifted rows).</summary>
internal sealed unsafe class Scratch
{
    internal const int PackedA = 0, PackedB = 1, SharedPanels = 2, DepthParts = 3, Columns = 4, WinogradU = 5, WinogradV = 6,
        WinogradM = 7, BroadcastTerm = 8, FoldedImages = 9, ComputedRows = 10, Padded = 11,
        ShiftedRows = 12, TapWeights = 13, Slots = 14;

    [ThreadStatic] static Scratch? t_current;
    internal static Scratch Current => t_current ??= new Scratch();

    readonly float*[] _buffers = new float*[Slots];
    readonly long[] _sizes = new long[Slots];

    /// <summary>At least `floats` elements in this slot; the contents are not kept when it grows.</summary>
    internal float* Get(int slot, long floats)
    {
        if (_sizes[slot] < floats)
        {
            NativeMemory.AlignedFree(_buffers[slot]);
            _buffers[slot] = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            _sizes[slot] = floats;
        }
        return _buffers[slot];
    }

    ~Scratch()
    {
        foreach (var p in _buffers) NativeMemory.AlignedFree(p);
    }
}
