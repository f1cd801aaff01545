// Placeholders for ops of group D not yet written in this tier; each op file that lands removes its entry.
namespace DreamBooth.Kernels.Cpu;

public sealed partial class CpuBackend
{
    public void Fill(DeviceBuffer y, float value) => throw new NotImplementedException();
    public void Copy(DeviceBuffer dst, DeviceBuffer src) => throw new NotImplementedException();
    public void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset) => throw new NotImplementedException();
    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner) => throw new NotImplementedException();
    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner) => throw new NotImplementedException();
    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner) => throw new NotImplementedException();
    public void Cast(DeviceBuffer dst, DeviceBuffer src) => throw new NotImplementedException();
    public void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim) => throw new NotImplementedException();
    public void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim) => throw new NotImplementedException();
    public void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n) => throw new NotImplementedException();
    public void RandomUniform(DeviceBuffer y, ulong seed, ulong offset) => throw new NotImplementedException();
    public void RandomNormal(DeviceBuffer y, ulong seed, ulong offset) => throw new NotImplementedException();
}
