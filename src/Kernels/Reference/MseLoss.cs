// Mean squared error loss, mean (a−b)², and its gradient with respect to a.
namespace DreamBooth.Kernels.Reference;

public static class MseLossReference
{

    public static double Forward(ReadOnlySpan<double> a, ReadOnlySpan<double> b) // a, b (n)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (a[i] - b[i]) * (a[i] - b[i]);
        return sum / a.Length;
    }

    public static void Backward(Span<double> da, ReadOnlySpan<double> a, ReadOnlySpan<double> b, double gradLoss) // (n) each
    {
        for (int i = 0; i < a.Length; i++) da[i] = gradLoss * 2 * (a[i] - b[i]) / a.Length;  // ∂/∂a mean (a−b)² = 2(a−b)/n
    }
}

public sealed partial class ReferenceBackend
{
    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n)
    {
        MseLossChecks.Validate("mse loss", loss, "loss", 1, a, b, n);
        Store(loss, [MseLossReference.Forward(D(a), D(b))]);
    }

    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n)
    {
        MseLossChecks.Validate("mse loss backward", da, "da", n, a, b, n);
        var result = new double[n];
        MseLossReference.Backward(result, D(a), D(b), gradLoss);
        Store(da, result);
    }
}
