// Linear layers and matrix products on the GEMM kernel, with their backward.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>y = x·Wᵀ + b (nn.Linear). x (..., In), weight (Out, In), bias (Out) or null → y (..., Out).</summary>
    public static Tensor Linear(Tensor x,   // (..., In)
        Tensor weight,                      // (Out, In)
        Tensor? bias = null)                // (Out)
    {
        if (weight.Rank != 2 || x.Rank < 1 || x.Dim(-1) != weight.Dim(1) || bias != null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new ArgumentException($"linear: x {x}, weight {weight}, bias {bias?.ToString() ?? "none"} do not fit (x (..., In), weight (Out, In), bias (Out))");
        int outF = weight.Dim(0), inF = weight.Dim(1);
        x = Contiguous(x);
        weight = Contiguous(weight);
        bias = bias is null ? null : Contiguous(bias);
        int rows = checked((int)(x.Length / inF));
        var yShape = x.Shape.ToArray();
        yShape[^1] = outF;
        var y = Tensor.Empty(x.Backend, yShape);
        var half = Autocast.ComputeType;                   // under autocast the GEMM reads half-rounded x, W and dy
        Tensor xa = Autocast.Round(x, half), wa = Autocast.Round(weight, half);
        x.Backend.Gemm(y.Storage, xa.Storage, wa.Storage, bias?.Storage, new GemmShape(rows, outF, inF, TransB: true));
        if (Tape.Needs(x, weight, bias))
            Tape.Record("linear", y, dy =>
            {
                var be = x.Backend;
                var g = Autocast.Round(dy, half);
                if (x.RequiresGrad)
                {   // dx = dy·W   (rows, Out)·(Out, In)
                    var dx = Tensor.EmptyLike(x);
                    be.Gemm(dx.Storage, g.Storage, wa.Storage, null, new GemmShape(rows, inF, outF));
                    Gradients.Accumulate(x, dx);
                }
                if (weight.RequiresGrad)  // dW += dyᵀ·x   (Out, rows)·(rows, In)
                    be.Gemm(Gradients.Into(weight).Storage, g.Storage, xa.Storage, null,
                        new GemmShape(outF, inF, rows, TransA: true, Beta: 1f));
                if (bias is { RequiresGrad: true })
                {   // db = Σ_rows dy (of the rounded dy under autocast, widened back to f32 for the reduction)
                    var db = Tensor.Empty(be, outF);
                    var gf = Cast(g, DType.F32);
                    be.ReduceSum(db.Storage, gf.Storage, [rows, outF], [1, outF], 1f);
                    Gradients.Accumulate(bias, db);
                    if (gf != g) gf.Dispose();
                }
                if (g != dy) g.Dispose();
            });
        return y;
    }

    /// <summary>Batched matrix product: a (B, M, K) · b (B, K, N) → (B, M, N); 2-D operands are batch 1.</summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        bool flat = a.Rank == 2 && b.Rank == 2;
        var a3 = flat ? Reshape(a, 1, a.Dim(0), a.Dim(1)) : Contiguous(a);
        var b3 = flat ? Reshape(b, 1, b.Dim(0), b.Dim(1)) : Contiguous(b);
        if (a3.Rank != 3 || b3.Rank != 3 || a3.Dim(0) != b3.Dim(0) || a3.Dim(2) != b3.Dim(1))
            throw new ArgumentException($"matmul: {a} · {b} do not fit ((B, M, K) · (B, K, N))");
        int batch = a3.Dim(0), m = a3.Dim(1), k = a3.Dim(2), n = b3.Dim(2);
        var c = Tensor.Empty(a.Backend, batch, m, n);
        var half = Autocast.ComputeType;                   // under autocast the GEMM reads half-rounded a, b and dc
        Tensor ah = Autocast.Round(a3, half), bh = Autocast.Round(b3, half);
        a.Backend.Gemm(c.Storage, ah.Storage, bh.Storage, null, new GemmShape(m, n, k, Batch: batch));
        if (Tape.Needs(a3, b3))
            Tape.Record("matmul", c, dc =>
            {
                var g = Autocast.Round(dc, half);
                if (a3.RequiresGrad)
                {   // da = dc·bᵀ
                    var da = Tensor.EmptyLike(a3);
                    a.Backend.Gemm(da.Storage, g.Storage, bh.Storage, null, new GemmShape(m, k, n, TransB: true, Batch: batch));
                    Gradients.Accumulate(a3, da);
                }
                if (b3.RequiresGrad)
                {   // db = aᵀ·dc
                    var db = Tensor.EmptyLike(b3);
                    a.Backend.Gemm(db.Storage, ah.Storage, g.Storage, null, new GemmShape(k, n, m, TransA: true, Batch: batch));
                    Gradients.Accumulate(b3, db);
                }
                if (g != dc) g.Dispose();
            });
        return flat ? Reshape(c, m, n) : c;
    }
}
