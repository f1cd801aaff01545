// Batched GEMM on the blocked SGEMM of GemmKernel (f16/bf16 A and B widened while packing): batches in parallel when there
// are enough, else each GEMM in parallel.
namespace DreamBooth.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s)
    {
        s.Validate(c, a, b, bias);
        var pa = new GemmKernel.Operand(Host(a).Pointer, a.DType);
        var pb = new GemmKernel.Operand(Host(b).Pointer, b.DType);
        float* pc = F(c), pbias = FOrNull(bias);
        long lda = s.TransA ? s.M : s.K, ldb = s.TransB ? s.K : s.N;
        var g = s;
        bool wide = UseVector512;
        // Batches that write disjoint blocks of C run one per core; overlapping ones (a C stride of 0 summing with beta 1)
        // keep the reference's order.
        bool disjoint = s.BatchStrideC >= (long)s.M * s.N;
        if (s.Batch >= 2 * Environment.ProcessorCount && disjoint)
            Cores.For(0, s.Batch, i => GemmKernel.Sgemm(wide, g.M, g.N, g.K, g.Alpha, pa.At(i * g.BatchStrideA), lda, g.TransA,
                pb.At(i * g.BatchStrideB), ldb, g.TransB, g.Beta, pc + i * g.BatchStrideC, g.N, pbias, parallel: false));
        else
            for (int i = 0; i < s.Batch; i++)
                GemmKernel.Sgemm(wide, s.M, s.N, s.K, s.Alpha, pa.At(i * s.BatchStrideA), lda, s.TransA,
                    pb.At(i * s.BatchStrideB), ldb, s.TransB, s.Beta, pc + i * s.BatchStrideC, s.N, pbias);
    }
}
