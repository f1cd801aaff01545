// The scalar oracle: each op converts its buffers to double, runs the plain math in the op's Reference file, stores back.
namespace DreamBooth.Kernels.Reference;

public sealed partial class ReferenceBackend : HostBackend, IBackend
{
    public override string Name => "reference";

    /// <summary>The elements of an f32 buffer, widened to double.</summary>
    double[] D(DeviceBuffer buffer)
    {
        var src = Host(buffer).AsSpan<float>();
        var result = new double[src.Length];
        for (int i = 0; i < src.Length; i++) result[i] = src[i];
        return result;
    }

    /// <summary>Rounds doubles back into an f32 buffer.</summary>
    void Store(DeviceBuffer buffer, ReadOnlySpan<double> values)
    {
        var dst = Host(buffer).AsSpan<float>();
        if (values.Length != dst.Length) throw new InvalidOperationException($"reference: {values.Length} values for {buffer}");
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)values[i];
    }

    /// <summary>An optional buffer as doubles; absent is an empty array.</summary>
    double[] DOrEmpty(DeviceBuffer? buffer) => buffer == null ? [] : D(buffer);
}
