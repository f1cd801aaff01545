// Current and peak bytes a backend has allocated: the numbers the trainer prints.
namespace DreamBooth.Kernels;

public sealed class MemoryStats
{
    long _current, _peak;

    public long CurrentBytes => Interlocked.Read(ref _current);
    public long PeakBytes => Interlocked.Read(ref _peak);

    public void Allocated(long bytes)
    {
        long now = Interlocked.Add(ref _current, bytes);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
    }

    public void Freed(long bytes) => Interlocked.Add(ref _current, -bytes);

    public void ResetPeak() => Interlocked.Exchange(ref _peak, CurrentBytes);
}
