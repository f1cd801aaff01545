// The one interface the autograd layer calls: memory, and every op with its backward. Every backend implements all of it.
namespace DreamBooth.Kernels;

/// <summary>
/// Adding an op, in this order (GEGLU is a small one to copy):
/// 1. Here: the method, outputs first, sizes last, a shape comment on every buffer.
/// 2. Its checks: a method of the op's record in OpShapes.cs when it has one, else a class in OpChecks.cs. Every tier
///    calls them first, so a bad call fails with the same message everywhere.
/// 3. Reference/&lt;Op&gt;.cs: the oracle, in double, written to be read (the formula, then loops), and the
///    ReferenceBackend part that calls it.
/// 4. Cpu/&lt;Op&gt;.cs: the CpuBackend part, written over IVec&lt;TV&gt; (Vec.cs) and dispatched on UseVector512, with fixed
///    work splits (Chunks) so results do not depend on the core count.
/// 5. Ilgpu/&lt;Op&gt;.cs: the kernels ([GpuKernel("name_f32")] static methods), and the IlgpuBackend part that loads them
///    on first use and launches them. `perf ptx` shows their registers and spills.
/// 6. src/Autograd/Ops: the F.* function and its backward, side by side, recorded on the tape.
/// 7. Tests: one body in tests/Kernels/&lt;Op&gt;Tests.cs (a BackendTest) against the reference on every tier, small
///    shapes that cross the CUDA tiles plus HostScale ones; a finite-difference check of the F.* backward
///    (tests/Autograd/OpGradChecks.cs); a row in perf if it is hot.
///
/// Conventions: outputs come first and sizes last; every buffer is contiguous and f32 unless the comment says otherwise
/// (slice a buffer to address an offset). Gradients of parameters (dw, dbias, dgamma, dbeta, dtable) are ACCUMULATED
/// into (+=), like PyTorch's .grad; gradients of inputs (dx, dq, ...) are overwritten. Elementwise ops may run in place
/// (y the same buffer as x or a). Calls may be asynchronous: Download and Synchronize wait for them.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }
    MemoryStats Memory { get; }

    // ---- memory ----
    DeviceBuffer Allocate(DType dtype, long length);                   // zero-filled
    DeviceBuffer AllocateUninitialized(DType dtype, long length);      // contents undefined: an output the next op overwrites
    void Upload<T>(DeviceBuffer dst, ReadOnlySpan<T> src) where T : unmanaged;    // raw bytes; sizes must match
    void Download<T>(Span<T> dst, DeviceBuffer src) where T : unmanaged;
    void Synchronize();

    // ---- matrix products and convolution ----
    void Gemm(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias, in GemmShape s); // see GemmShape (A, B f32, f16 or bf16)
    void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s); // y (N,OutC,OH,OW) x (N,InC,H,W) w (OutC,InC,KH,KW)
    void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s);        // dx (N,InC,H,W) dy (N,OutC,OH,OW)
    void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s); // dw += , dbias (OutC) +=

    // ---- normalisation, softmax, attention ----
    void GroupNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int n, int c, int hw, int groups, float eps, bool silu);       // y,x (N,C,HW) mean,rstd (N,G) gamma,beta (C); silu: y = silu(norm)
    void GroupNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, DeviceBuffer beta, int n, int c, int hw, int groups, bool silu);
    void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
        int rows, int dim, float eps);                                 // y,x (rows,dim) mean,rstd (rows) gamma,beta (dim)
    void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim);
    void Softmax(DeviceBuffer y, DeviceBuffer x, int rows, int cols);  // over the last axis: y,x (rows,cols)
    void SoftmaxBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer y, int rows, int cols);
    void Attention(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, in AttentionShape s); // see AttentionShape
    void AttentionBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, in AttentionShape s);

    // ---- elementwise and broadcasting ----
    void Unary(UnaryOp op, DeviceBuffer y, DeviceBuffer x, long n);
    void UnaryBackward(UnaryOp op, DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, long n);
    void Binary(BinaryOp op, DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape); // y has the broadcast shape
    void BinaryBackward(BinaryOp op, DeviceBuffer? da, DeviceBuffer? db, DeviceBuffer dy, DeviceBuffer a, DeviceBuffer b,
        ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape);          // da (aShape), db (bShape): broadcast dims summed
    void Scale(DeviceBuffer y, DeviceBuffer x, float alpha, long n);   // y = alpha·x
    void Axpy(DeviceBuffer y, DeviceBuffer x, float alpha, long n);    // y += alpha·x
    void Geglu(DeviceBuffer y, DeviceBuffer x, int rows, int dim);     // x (rows, 2·dim) = [h | gate], y (rows, dim) = h·gelu(gate)
    void GegluBackward(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer x, int rows, int dim);

    // ---- data movement (any dtype) ----
    void Fill(DeviceBuffer y, float value);
    void Copy(DeviceBuffer dst, DeviceBuffer src);                     // same dtype and length
    void StridedCopy(DeviceBuffer dst, DeviceBuffer src, ReadOnlySpan<int> shape, ReadOnlySpan<long> srcStrides, long srcOffset); // dst contiguous (shape)
    void Concat(DeviceBuffer y, DeviceBuffer a, DeviceBuffer b, int outer, int aAxis, int bAxis, int inner); // y (outer, aAxis+bAxis, inner)
    void Slice(DeviceBuffer y, DeviceBuffer x, int outer, int xAxis, int start, int yAxis, int inner);    // y (outer, yAxis, inner) = x[:, start:start+yAxis, :]
    void SliceBackward(DeviceBuffer dx, DeviceBuffer dy, int outer, int xAxis, int start, int yAxis, int inner); // dx zero outside the slice
    void Cast(DeviceBuffer dst, DeviceBuffer src);                     // f32 <-> f16 <-> bf16, round to nearest even

    // ---- reductions and losses ----
    void ReduceSum(DeviceBuffer y, DeviceBuffer x, ReadOnlySpan<int> xShape, ReadOnlySpan<int> yShape, float scale); // y = scale·Σ over dims where yShape is 1
    void SumSquares(DeviceBuffer result, DeviceBuffer x, long n);      // result (1) = Σ x² (gradient-norm clipping)
    void MseLoss(DeviceBuffer loss, DeviceBuffer a, DeviceBuffer b, long n);            // loss (1) = mean (a-b)²
    void MseLossBackward(DeviceBuffer da, DeviceBuffer a, DeviceBuffer b, float gradLoss, long n); // da = gradLoss·2(a-b)/n

    // ---- resampling and lookup ----
    void UpsampleNearest2x(DeviceBuffer y, DeviceBuffer x, int planes, int h, int w);   // x (planes,H,W) -> y (planes,2H,2W)
    void UpsampleNearest2xBackward(DeviceBuffer dx, DeviceBuffer dy, int planes, int h, int w);
    void Embedding(DeviceBuffer y, DeviceBuffer table, DeviceBuffer ids, int count, int dim);         // ids i32 (count), table (vocab,dim), y (count,dim)
    void EmbeddingBackward(DeviceBuffer dtable, DeviceBuffer dy, DeviceBuffer ids, int count, int dim); // dtable +=

    // ---- optimizer and random numbers ----
    void AdamW(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, in AdamWStep s, long n);
    void AdamW8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax,
        in AdamWStep s, long n);   // param, grad (n); m, v u8 codes (n); mMax, vMax absmax (⌈n/256⌉): see DynamicMap
    void RandomUniform(DeviceBuffer y, ulong seed, ulong offset);      // [0, 1), Philox4x32-10: element i from counter offset + i/4
    void RandomNormal(DeviceBuffer y, ulong seed, ulong offset);       // N(0, 1), Box-Muller on the same stream
}
