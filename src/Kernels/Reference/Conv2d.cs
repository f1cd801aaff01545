// 2-D convolution (NCHW, zero padding, any stride) in double: forward, input gradient and weight gradient by direct loops.
namespace DreamBooth.Kernels.Reference;

public static class Conv2dReference
{
    /// <summary>y[n,o,oh,ow] = bias[o] + Σ_{c,kh,kw} w[o,c,kh,kw] · x[n, c, oh·S + kh − P, ow·S + kw − P], x zero outside the image.</summary>
    public static void Forward(Span<double> y, ReadOnlySpan<double> x, ReadOnlySpan<double> w, ReadOnlySpan<double> bias, in ConvShape s)
    {   // y (N, OutC, OH, OW)  x (N, InC, H, W)  w (OutC, InC, KH, KW)  bias (OutC) or empty
        int oh = s.OutH, ow = s.OutW;
        for (int n = 0; n < s.N; n++)
            for (int o = 0; o < s.OutC; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double sum = bias.IsEmpty ? 0 : bias[o];
                        for (int c = 0; c < s.InC; c++)
                            for (int kh = 0; kh < s.KH; kh++)
                                for (int kw = 0; kw < s.KW; kw++)
                                {
                                    int ih = i * s.Stride + kh - s.Pad, iw = j * s.Stride + kw - s.Pad;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    sum += w[((o * s.InC + c) * s.KH + kh) * s.KW + kw] * x[((n * s.InC + c) * s.H + ih) * s.W + iw];
                                }
                        y[((n * s.OutC + o) * oh + i) * ow + j] = sum;
                    }
    }

    /// <summary>dx[n,c,ih,iw] = Σ w[o,c,kh,kw] · dy[n,o,oh,ow] over every (o, kh, kw, oh, ow) with oh·S + kh − P = ih and
    /// ow·S + kw − P = iw: each output scatters its gradient back to the inputs it read. dx is overwritten.</summary>
    public static void GradInput(Span<double> dx, ReadOnlySpan<double> dy, ReadOnlySpan<double> w, in ConvShape s)
    {   // dx (N, InC, H, W)  dy (N, OutC, OH, OW)  w (OutC, InC, KH, KW)
        int oh = s.OutH, ow = s.OutW;
        dx.Clear();
        for (int n = 0; n < s.N; n++)
            for (int o = 0; o < s.OutC; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double g = dy[((n * s.OutC + o) * oh + i) * ow + j];
                        for (int c = 0; c < s.InC; c++)
                            for (int kh = 0; kh < s.KH; kh++)
                                for (int kw = 0; kw < s.KW; kw++)
                                {
                                    int ih = i * s.Stride + kh - s.Pad, iw = j * s.Stride + kw - s.Pad;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    dx[((n * s.InC + c) * s.H + ih) * s.W + iw] += w[((o * s.InC + c) * s.KH + kh) * s.KW + kw] * g;
                                }
                    }
    }

    /// <summary>dw[o,c,kh,kw] += Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n, c, oh·S + kh − P, ow·S + kw − P];  dbias[o] += Σ_{n,oh,ow} dy[n,o,oh,ow].
    /// Both accumulate; dbias empty skips it.</summary>
    public static void GradWeight(Span<double> dw, Span<double> dbias, ReadOnlySpan<double> dy, ReadOnlySpan<double> x, in ConvShape s)
    {   // dw (OutC, InC, KH, KW)  dbias (OutC) or empty  dy (N, OutC, OH, OW)  x (N, InC, H, W)
        int oh = s.OutH, ow = s.OutW;
        for (int n = 0; n < s.N; n++)
            for (int o = 0; o < s.OutC; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double g = dy[((n * s.OutC + o) * oh + i) * ow + j];
                        if (!dbias.IsEmpty) dbias[o] += g;
                        for (int c = 0; c < s.InC; c++)
                            for (int kh = 0; kh < s.KH; kh++)
                                for (int kw = 0; kw < s.KW; kw++)
                                {
                                    int ih = i * s.Stride + kh - s.Pad, iw = j * s.Stride + kw - s.Pad;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    dw[((o * s.InC + c) * s.KH + kh) * s.KW + kw] += g * x[((n * s.InC + c) * s.H + ih) * s.W + iw];
                                }
                    }
    }
}

public sealed partial class ReferenceBackend
{
    public void Conv2d(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, in ConvShape s)
    {
        s.ValidateForward(y, x, w, bias);
        var yv = new double[y.Length];
        Conv2dReference.Forward(yv, D(x), D(w), DOrEmpty(bias), s);
        Store(y, yv);
    }

    public void Conv2dGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w, in ConvShape s)
    {
        s.ValidateGradInput(dx, dy, w);
        var dxv = new double[dx.Length];
        Conv2dReference.GradInput(dxv, D(dy), D(w), s);
        Store(dx, dxv);
    }

    public void Conv2dGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x, in ConvShape s)
    {
        s.ValidateGradWeight(dw, dbias, dy, x);
        var dwv = D(dw);
        var dbv = DOrEmpty(dbias);
        Conv2dReference.GradWeight(dwv, dbv, D(dy), D(x), s);
        Store(dw, dwv);
        if (dbias != null) Store(dbias, dbv);
    }
}
