// Placeholders for ops of group C not yet written in this tier; each op file that lands removes its entry.
namespace DreamBooth.Kernels.Cpu;

public sealed partial class CpuBackend
{
    public void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n) => throw new NotImplementedException();
    public void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n) => throw new NotImplementedException();
    public void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape) => throw new NotImplementedException();
    public void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape) => throw new NotImplementedException();
    public void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n) => throw new NotImplementedException();
    public void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n) => throw new NotImplementedException();
    public void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim) => throw new NotImplementedException();
    public void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim) => throw new NotImplementedException();
    public void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale) => throw new NotImplementedException();
    public void SumSquares(DeviceBuffer result, DeviceBuffer x, long n) => throw new NotImplementedException();
    public void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n) => throw new NotImplementedException();
    public void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n) => throw new NotImplementedException();
    public void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w) => throw new NotImplementedException();
    public void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w) => throw new NotImplementedException();
}
