// Batched matrix product C = alpha·op(A)·op(B) + beta·C + bias in double (A, B f32, f16 or bf16), and its gradients.
namespace DreamBooth.Kernels.Reference;

public static class GemmReference
{
    /// <summary>C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] + bias (bias[j] added to column j of every row; empty for none).
    /// C is not read when beta is 0. Batches run in order, so a C stride of 0 with beta 1 sums the batch products.</summary>
    public static void Gemm(Span<double> c, ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> bias, in GemmShape s)
    {
        for (int batch = 0; batch < s.Batch; batch++)
        {
            var ab = a[(int)(batch * s.BatchStrideA)..];   // (M, K), or (K, M) when TransA
            var bb = b[(int)(batch * s.BatchStrideB)..];   // (K, N), or (N, K) when TransB
            var cb = c[(int)(batch * s.BatchStrideC)..];   // (M, N)
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double sum = 0;
                    for (int k = 0; k < s.K; k++)
                        sum += (s.TransA ? ab[k * s.M + i] : ab[i * s.K + k]) * (s.TransB ? bb[j * s.K + k] : bb[k * s.N + j]);
                    double value = s.Alpha * sum;
                    if (s.Beta != 0) value += s.Beta * cb[i * s.N + j];
                    if (!bias.IsEmpty) value += bias[j];
                    cb[i * s.N + j] = value;
                }
        }
    }

    /// <summary>Gradients of C = alpha·op(A)·op(B) + bias, ACCUMULATED (+=) into dA (A's layout), dB (B's layout) and
    /// dbias (N; empty to skip), each written as one more GEMM, the way the autograd layer calls the backend:
    ///   d op(A) = alpha·dC·op(B)ᵀ   (M, K)      d op(B) = alpha·op(A)ᵀ·dC   (K, N)      dbias = Σ_rows dC
    /// and a transposed operand's gradient is the transpose of those, i.e. the product taken in the other order.</summary>
    public static void GemmBackward(Span<double> da, Span<double> db, Span<double> dbias, ReadOnlySpan<double> dc,
        ReadOnlySpan<double> a, ReadOnlySpan<double> b, in GemmShape s)
    {
        for (int batch = 0; batch < s.Batch; batch++)
        {
            var ab = a[(int)(batch * s.BatchStrideA)..];
            var bb = b[(int)(batch * s.BatchStrideB)..];
            var dcb = dc[(int)(batch * s.BatchStrideC)..((int)(batch * s.BatchStrideC) + s.M * s.N)];  // (M, N)
            var dab = da[(int)(batch * s.BatchStrideA)..];
            var dbb = db[(int)(batch * s.BatchStrideB)..];
            if (!s.TransA)  // dA (M, K) += alpha·dC·op(B)ᵀ
                Gemm(dab, dcb, bb, [], new GemmShape(s.M, s.K, s.N, TransA: false, TransB: !s.TransB, Alpha: s.Alpha, Beta: 1));
            else            // dA (K, M) += alpha·op(B)·dCᵀ
                Gemm(dab, bb, dcb, [], new GemmShape(s.K, s.M, s.N, TransA: s.TransB, TransB: true, Alpha: s.Alpha, Beta: 1));
            if (!s.TransB)  // dB (K, N) += alpha·op(A)ᵀ·dC
                Gemm(dbb, ab, dcb, [], new GemmShape(s.K, s.N, s.M, TransA: !s.TransA, TransB: false, Alpha: s.Alpha, Beta: 1));
            else            // dB (N, K) += alpha·dCᵀ·op(A)
                Gemm(dbb, dcb, ab, [], new GemmShape(s.N, s.K, s.M, TransA: true, TransB: s.TransA, Alpha: s.Alpha, Beta: 1));
            if (!dbias.IsEmpty)
                for (int i = 0; i < s.M; i++)
                    for (int j = 0; j < s.N; j++) dbias[j] += dcb[i * s.N + j];
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s)
    {
        s.Validate(c, a, b, bias);
        var cv = D(c);  // elements outside the batch matrices keep their values; with beta 0 the rest is not read
        GemmReference.Gemm(cv, Input(a), Input(b), DOrEmpty(bias), s);
        Store(c, cv);
    }

    /// <summary>An f32, f16 or bf16 operand widened (exactly) to double.</summary>
    double[] Input(DeviceBuffer buffer)
    {
        if (buffer.DType == DType.F32) return D(buffer);
        var bits = Host(buffer).AsSpan<ushort>();
        var result = new double[bits.Length];
        for (int i = 0; i < bits.Length; i++)
            result[i] = buffer.DType == DType.F16 ? HalfPrecision.HalfToFloat(bits[i]) : HalfPrecision.BFloat16ToFloat(bits[i]);
        return result;
    }
}
