// 2-D convolution on the fused conv kernels: forward, gradient of the input, gradient of the weight and bias.
using DreamBooth.Kernels;

namespace DreamBooth.Autograd;

public static partial class F
{
    /// <summary>nn.Conv2d with symmetric zero padding: x (N, C, H, W), weight (O, C, KH, KW), bias (O) or null →
    /// y (N, O, OH, OW) with OH = (H + 2·padding − KH) / stride + 1 (OW likewise).</summary>
    public static Tensor Conv2d(Tensor x,   // (N, C, H, W)
        Tensor weight,                      // (O, C, KH, KW)
        Tensor? bias,                       // (O)
        int stride = 1, int padding = 0)
    {
        if (x.Rank != 4 || weight.Rank != 4 || x.Dim(1) != weight.Dim(1) || bias != null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new ArgumentException($"conv2d: x {x}, weight {weight}, bias {bias?.ToString() ?? "none"} do not fit " +
                                        "(x (N, C, H, W), weight (O, C, KH, KW), bias (O))");
        var s = new ConvShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), weight.Dim(0), weight.Dim(2), weight.Dim(3), stride, padding);
        s.Validate("conv2d");   // stride, padding and kernel against the input, before y is sized from them
        x = Contiguous(x);
        weight = Contiguous(weight);
        bias = bias is null ? null : Contiguous(bias);
        var y = Tensor.Empty(x.Backend, s.N, s.OutC, s.OutH, s.OutW);
        x.Backend.Conv2d(y.Storage, x.Storage, weight.Storage, bias?.Storage, s);
        if (Tape.Needs(x, weight, bias))
            Tape.Record("conv2d", y, dy =>
            {
                var be = x.Backend;
                if (x.RequiresGrad)
                {   // dx = dy ⋆ W: the transposed convolution of the output gradient (the kernel overwrites dx)
                    var dx = Tensor.EmptyLike(x);
                    be.Conv2dGradInput(dx.Storage, dy.Storage, weight.Storage, s);
                    Gradients.Accumulate(x, dx);
                }
                if (weight.RequiresGrad || bias is { RequiresGrad: true })
                {   // dW += Σ_{n,oh,ow} dy·x (the input patch under each output pixel), db += Σ_{n,oh,ow} dy
                    using var scratch = weight.RequiresGrad ? null : Tensor.ZerosLike(weight);
                    var dw = scratch ?? Gradients.Into(weight);
                    var db = bias is { RequiresGrad: true } ? Gradients.Into(bias) : null;
                    be.Conv2dGradWeight(dw.Storage, db?.Storage, dy.Storage, x.Storage, s);
                }
            });
        return y;
    }
}
