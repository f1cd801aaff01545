// Placeholders for ops of group A not yet written in this tier; each op file that lands removes its entry.
namespace DreamBooth.Kernels.Reference;

public sealed partial class ReferenceBackend
{
    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s) => throw new NotImplementedException();
    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s) => throw new NotImplementedException();
    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s) => throw new NotImplementedException();
    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s) => throw new NotImplementedException();
}
