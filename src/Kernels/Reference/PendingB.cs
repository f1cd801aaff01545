// Placeholders for ops of group B not yet written in this tier; each op file that lands removes its entry.
namespace DreamBooth.Kernels.Reference;

public sealed partial class ReferenceBackend
{
    public void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, float eps) => throw new NotImplementedException();
    public void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int n, int c, int hw, int groups) => throw new NotImplementedException();
    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, int rows, int dim, float eps) => throw new NotImplementedException();
    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim) => throw new NotImplementedException();
    public void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols) => throw new NotImplementedException();
    public void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols) => throw new NotImplementedException();
    public void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s) => throw new NotImplementedException();
    public void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s) => throw new NotImplementedException();
}
