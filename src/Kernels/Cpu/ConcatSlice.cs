// Concat, Slice and SliceBackward as row block moves over (outer, axis, inner), any dtype, parallel over rows.

namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner)
    {
        ConcatSliceChecks.ValidateConcat(y, a, b, outer, aAxis, bAxis, inner);
        long size = a.DType.Size(), aRow = aAxis * (long)inner * size, bRow = bAxis * (long)inner * size;
        byte* py = (byte*)Host(y).Pointer;
        MoveRows(py, aRow + bRow, (byte*)Host(a).Pointer, aRow, outer, aRow);
        MoveRows(py + aRow, aRow + bRow, (byte*)Host(b).Pointer, bRow, outer, bRow);
    }

    public void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner)
    {
        ConcatSliceChecks.ValidateSlice("slice", y, x, outer, xAxis, start, yAxis, inner);
        long size = x.DType.Size(), xRow = xAxis * (long)inner * size, yRow = yAxis * (long)inner * size;
        MoveRows((byte*)Host(y).Pointer, yRow, (byte*)Host(x).Pointer + start * (long)inner * size, xRow, outer, yRow);
    }

    public void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner)
    {
        ConcatSliceChecks.ValidateSlice("slice backward", dy, dx, outer, xAxis, start, yAxis, inner, "dy", "dx");
        long size = dx.DType.Size(), xRow = xAxis * (long)inner * size, yRow = yAxis * (long)inner * size;
        long before = start * (long)inner * size, after = xRow - before - yRow;
        byte* pdx = (byte*)Host(dx).Pointer, pdy = (byte*)Host(dy).Pointer;
        Chunks.For(outer, Math.Max(1, MoveGrainBytes / xRow), (o0, o1) =>
        {
            for (long o = o0; o < o1; o++)
            {
                byte* row = pdx + o * xRow;
                new Span<byte>(row, checked((int)before)).Clear();
                Buffer.MemoryCopy(pdy + o * yRow, row + before, yRow, yRow);
                new Span<byte>(row + before + yRow, checked((int)after)).Clear();
            }
        });
    }
}
