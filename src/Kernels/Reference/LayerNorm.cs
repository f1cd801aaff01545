// Layer normalisation over the last dim of (rows, dim): the double oracle (forward, backward), its validation, and the reference entry points.
namespace DreamBooth.Kernels.Reference;

public static class LayerNormReference
{
    /// <summary>Per row: mean, rstd = 1/√(var + eps) (biased variance), y = (x − mean)·rstd·gamma[j] + beta[j].</summary>
    public static void Forward(Span<double> y, Span<double> mean, Span<double> rstd, // (rows, dim) (rows) (rows)
        ReadOnlySpan<double> x, ReadOnlySpan<double> gamma, ReadOnlySpan<double> beta, // (rows, dim) (dim) (dim)
        int rows, int dim, double eps)
    {
        for (int r = 0; r < rows; r++)
        {
            var xs = x.Slice(r * dim, dim);
            double mu = 0, var = 0;
            foreach (double v in xs) mu += v;
            mu /= dim;
            foreach (double v in xs) var += (v - mu) * (v - mu);
            double rs = 1 / Math.Sqrt(var / dim + eps);
            mean[r] = mu;
            rstd[r] = rs;
            for (int j = 0; j < dim; j++) y[r * dim + j] = (xs[j] - mu) * rs * gamma[j] + beta[j];
        }
    }

    /// <summary>With xhat = (x − mean)·rstd and dxhat = dy·gamma, per row:
    /// dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) (overwritten); dgamma += Σ dy·xhat, dbeta += Σ dy.</summary>
    public static void Backward(Span<double> dx, Span<double> dgamma, Span<double> dbeta, // (rows, dim) (dim) (dim)
        ReadOnlySpan<double> dy, ReadOnlySpan<double> x, // (rows, dim) (rows, dim)
        ReadOnlySpan<double> mean, ReadOnlySpan<double> rstd, ReadOnlySpan<double> gamma, // (rows) (rows) (dim)
        int rows, int dim)
    {
        for (int r = 0; r < rows; r++)
        {
            double mu = mean[r], rs = rstd[r];
            double sumD = 0, sumDX = 0; // Σ dxhat, Σ dxhat·xhat
            for (int j = 0; j < dim; j++)
            {
                int at = r * dim + j;
                double xhat = (x[at] - mu) * rs;
                sumD += dy[at] * gamma[j];
                sumDX += dy[at] * gamma[j] * xhat;
                dgamma[j] += dy[at] * xhat;
                dbeta[j] += dy[at];
            }
            for (int j = 0; j < dim; j++)
            {
                int at = r * dim + j;
                double xhat = (x[at] - mu) * rs;
                dx[at] = rs * (dy[at] * gamma[j] - sumD / dim - xhat * sumDX / dim);
            }
        }
    }
}

public sealed partial class ReferenceBackend
{
    public void LayerNorm(DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer x, DeviceBuffer gamma,
        DeviceBuffer beta, int rows, int dim, float eps)
    {
        LayerNormChecks.ValidateForward(y, mean, rstd, x, gamma, beta, rows, dim, eps);
        var yd = new double[y.Length];
        var md = new double[rows];
        var rd = new double[rows];
        LayerNormReference.Forward(yd, md, rd, D(x), D(gamma), D(beta), rows, dim, eps);
        Store(y, yd);
        Store(mean, md);
        Store(rstd, rd);
    }

    public void LayerNormBackward(DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, DeviceBuffer dy, DeviceBuffer x,
        DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer gamma, int rows, int dim)
    {
        LayerNormChecks.ValidateBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, rows, dim);
        var dxd = new double[dx.Length];
        double[] dg = D(dgamma), db = D(dbeta);
        LayerNormReference.Backward(dxd, dg, db, D(dy), D(x), D(mean), D(rstd), D(gamma), rows, dim);
        Store(dx, dxd);
        Store(dgamma, dg);
        Store(dbeta, db);
    }
}
