// Group norm, layer norm and softmax on their fused kernels; the backward reuses the saved mean and 1/std.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>nn.GroupNorm: the C channels split into <paramref name="groups"/> groups; each (sample, group) is
    /// normalised over its channels and all spatial positions, then scaled and shifted per channel. With
    /// <paramref name="silu"/>, SiLU(GroupNorm(x)) in one op: the backward recomputes the pre-activation from x and the
    /// saved statistics, so neither the normalised tensor nor a separate SiLU output is kept for it.</summary>
    public static Tensor GroupNorm(Tensor x,   // (N, C, ...)
        int groups,
        Tensor gamma,                          // (C)
        Tensor beta,                           // (C)
        float eps,
        bool silu = false)
    {
        if (x.Rank < 2 || groups <= 0 || x.Dim(1) % groups != 0 || !IsVector(gamma, x.Dim(1)) || !IsVector(beta, x.Dim(1)))
            throw new ArgumentException($"group norm: x {x}, {groups} groups, gamma {gamma}, beta {beta} do not fit " +
                                        "(x (N, C, ...) with C divisible by groups, gamma and beta (C))");
        x = Contiguous(x);
        gamma = Contiguous(gamma);
        beta = Contiguous(beta);
        int n = x.Dim(0), c = x.Dim(1), hw = checked((int)(x.Length / ((long)n * c)));
        var y = Tensor.EmptyLike(x);
        var mean = Tensor.Empty(x.Backend, n, groups);
        var rstd = Tensor.Empty(x.Backend, n, groups);
        x.Backend.GroupNorm(y.Storage, mean.Storage, rstd.Storage, x.Storage, gamma.Storage, beta.Storage, n, c, hw, groups, eps, silu);
        if (Tape.Needs(x, gamma, beta))
            Tape.Record(silu ? "group norm silu" : "group norm", y, dy =>
            {   // x̂ = (x − μ)·rstd, dz = dy (with SiLU: dy·silu'(γx̂ + β)); dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with
                // g = γ·dz, means over the group; dγ += Σ dz·x̂, dβ += Σ dz over N and the spatial positions
                var dx = Tensor.EmptyLike(x);
                using var scratchGamma = gamma.RequiresGrad ? null : Tensor.ZerosLike(gamma);
                using var scratchBeta = beta.RequiresGrad ? null : Tensor.ZerosLike(beta);
                x.Backend.GroupNormBackward(dx.Storage, (scratchGamma ?? Gradients.Into(gamma)).Storage,
                    (scratchBeta ?? Gradients.Into(beta)).Storage, dy.Storage, x.Storage, mean.Storage, rstd.Storage,
                    gamma.Storage, beta.Storage, n, c, hw, groups, silu);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>nn.LayerNorm over the last axis: each row of D values normalised, then scaled and shifted.</summary>
    public static Tensor LayerNorm(Tensor x,   // (..., D)
        Tensor gamma,                          // (D)
        Tensor beta,                           // (D)
        float eps)
    {
        if (x.Rank < 1 || !IsVector(gamma, x.Dim(-1)) || !IsVector(beta, x.Dim(-1)))
            throw new ArgumentException($"layer norm: x {x}, gamma {gamma}, beta {beta} do not fit (x (..., D), gamma and beta (D))");
        x = Contiguous(x);
        gamma = Contiguous(gamma);
        beta = Contiguous(beta);
        int dim = x.Dim(-1), rows = checked((int)(x.Length / dim));
        var y = Tensor.EmptyLike(x);
        var mean = Tensor.Empty(x.Backend, rows);
        var rstd = Tensor.Empty(x.Backend, rows);
        x.Backend.LayerNorm(y.Storage, mean.Storage, rstd.Storage, x.Storage, gamma.Storage, beta.Storage, rows, dim, eps);
        if (Tape.Needs(x, gamma, beta))
            Tape.Record("layer norm", y, dy =>
            {   // as group norm with one group per row: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = γ·dy
                var dx = Tensor.EmptyLike(x);
                using var scratchGamma = gamma.RequiresGrad ? null : Tensor.ZerosLike(gamma);
                using var scratchBeta = beta.RequiresGrad ? null : Tensor.ZerosLike(beta);
                x.Backend.LayerNormBackward(dx.Storage, (scratchGamma ?? Gradients.Into(gamma)).Storage,
                    (scratchBeta ?? Gradients.Into(beta)).Storage, dy.Storage, x.Storage, mean.Storage, rstd.Storage,
                    gamma.Storage, rows, dim);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>softmax over the last axis.</summary>
    public static Tensor Softmax(Tensor x)   // (..., D)
    {
        if (x.Rank < 1 || x.Length == 0) throw new ArgumentException($"softmax: x {x} must have at least one axis and one element");
        x = Contiguous(x);
        int cols = x.Dim(-1), rows = checked((int)(x.Length / cols));
        var y = Tensor.EmptyLike(x);
        x.Backend.Softmax(y.Storage, x.Storage, rows, cols);
        if (Tape.Needs(x))
            Tape.Record("softmax", y, dy =>
            {   // dx = y·(dy − Σ_j dy_j·y_j), from the saved output
                var dx = Tensor.EmptyLike(x);
                x.Backend.SoftmaxBackward(dx.Storage, dy.Storage, y.Storage, rows, cols);
                Gradients.Accumulate(x, dx);
            });
        return y;
    }

    static bool IsVector(Tensor t, int length) => t.Rank == 1 && t.Dim(0) == length;
}
