// Argument checks shared by every backend, so a bad call fails the same clear way on each tier.
namespace DreamBooth.Kernels;

public static class Check
{
    public static void Positive(string op, params (string Name, long Value)[] sizes)
    {
        foreach (var (name, value) in sizes)
            if (value <= 0) throw new ArgumentException($"{op}: {name} must be positive, got {value}");
    }

    public static void Exactly(string op, string name, DeviceBuffer buffer, DType dtype, long length, string shape)
    {
        Live(op, name, buffer);
        if (buffer.DType != dtype || buffer.Length != length)
            throw new ArgumentException($"{op}: {name} is {buffer}, expected {dtype.Name()}[{length}] for {shape}");
    }

    public static void AtLeast(string op, string name, DeviceBuffer buffer, DType dtype, long length, string shape)
    {
        Live(op, name, buffer);
        if (buffer.DType != dtype || buffer.Length < length)
            throw new ArgumentException($"{op}: {name} is {buffer}, expected {dtype.Name()} with at least {length} elements for {shape}");
    }

    /// <summary>Refuses a u8 buffer: 8-bit optimizer codes move only by Copy, Upload and Download.</summary>
    public static void NotCodes(string op, string name, DeviceBuffer buffer)
    {
        if (buffer.DType == DType.U8)
            throw new ArgumentException($"{op}: {name} is {buffer}; u8 buffers hold 8-bit optimizer state and move only by copy, upload and download");
    }

    public static void SameBackend(string op, IBackend backend, params DeviceBuffer?[] buffers)
    {
        foreach (var b in buffers)
            if (b != null && !ReferenceEquals(b.Backend, backend))
                throw new ArgumentException($"{op}: a buffer belongs to backend '{b.Backend.Name}', not '{backend.Name}'");
    }

    static void Live(string op, string name, DeviceBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer, $"{op}: {name}");
        if (buffer.IsDisposed) throw new ObjectDisposedException($"{op}: {name}", $"{op}: {name} was disposed");
    }

    /// <summary>Element count of a shape; every dimension must be positive.</summary>
    public static long Count(string op, string name, ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d <= 0) throw new ArgumentException($"{op}: {name} shape ({string.Join(", ", shape.ToArray())}) has a non-positive dimension");
            n *= d;
        }
        return n;
    }

    public static string Shape(ReadOnlySpan<int> shape) => "(" + string.Join(", ", shape.ToArray()) + ")";
}
