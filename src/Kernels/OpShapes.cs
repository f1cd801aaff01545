// The small records that describe one op call (GEMM, conv2d and attention shapes, AdamW hyper-parameters, op kinds),
// each with the buffer checks every backend runs first.
namespace DreamBooth.Kernels;

/// <summary>C[b] = Alpha · op(A[b]) · op(B[b]) + Beta · C[b] (+ bias[n] on every row), for b in [0, Batch).
/// op(A) is (M, K): A is stored (M, K), or (K, M) when TransA. op(B) is (K, N): B is stored (K, N), or (N, K) when TransB.
/// Strides are elements between consecutive batch matrices; 0 broadcasts one matrix to every batch. A and B are both f32,
/// both f16 or both bf16 (widened exactly to f32; the sums accumulate in f32); C and bias are f32.</summary>
public readonly record struct GemmShape(int M, int N, int K, bool TransA = false, bool TransB = false,
    float Alpha = 1f, float Beta = 0f, int Batch = 1, long StrideA = -1, long StrideB = -1, long StrideC = -1)
{
    public long BatchStrideA => StrideA >= 0 ? StrideA : (long)M * K;
    public long BatchStrideB => StrideB >= 0 ? StrideB : (long)K * N;
    public long BatchStrideC => StrideC >= 0 ? StrideC : (long)M * N;
    public double Flops => 2.0 * Batch * M * N * K;

    public void Validate(DeviceBuffer c, DeviceBuffer a, DeviceBuffer b, DeviceBuffer? bias)
    {
        const string op = "gemm";
        Check.Positive(op, ("M", M), ("N", N), ("K", K), ("batch", Batch));
        string dims = $"M={M} N={N} K={K} batch={Batch}";
        ArgumentNullException.ThrowIfNull(a, $"{op}: A");
        ArgumentNullException.ThrowIfNull(b, $"{op}: B");
        if (a.DType is not (DType.F32 or DType.F16 or DType.BF16) || b.DType != a.DType)
            throw new ArgumentException($"{op}: A is {a} and B is {b}; A and B must both be f32, both f16 or both bf16");
        Check.AtLeast(op, "A", a, a.DType, (Batch - 1) * BatchStrideA + (long)M * K, dims);
        Check.AtLeast(op, "B", b, a.DType, (Batch - 1) * BatchStrideB + (long)K * N, dims);
        Check.AtLeast(op, "C", c, DType.F32, (Batch - 1) * BatchStrideC + (long)M * N, dims);
        if (bias != null) Check.Exactly(op, "bias", bias, DType.F32, N, $"(N={N})");
    }
}

/// <summary>2-D convolution, NCHW activations and (OutC, InC, KH, KW) weights, symmetric zero padding.</summary>
public readonly record struct ConvShape(int N, int InC, int H, int W, int OutC, int KH, int KW, int Stride = 1, int Pad = 0)
{
    public int OutH => (H + 2 * Pad - KH) / Stride + 1;
    public int OutW => (W + 2 * Pad - KW) / Stride + 1;
    public long InputLength => (long)N * InC * H * W;
    public long OutputLength => (long)N * OutC * OutH * OutW;
    public long WeightLength => (long)OutC * InC * KH * KW;
    public double Flops => 2.0 * OutputLength * InC * KH * KW;
    public override string ToString() => $"x({N},{InC},{H},{W}) w({OutC},{InC},{KH},{KW}) stride {Stride} pad {Pad}";

    public void Validate(string op)
    {
        Check.Positive(op, ("N", N), ("InC", InC), ("H", H), ("W", W), ("OutC", OutC), ("KH", KH), ("KW", KW), ("stride", Stride));
        if (Pad < 0) throw new ArgumentException($"{op}: padding {Pad} is negative");
        if (OutH <= 0 || OutW <= 0) throw new ArgumentException($"{op}: kernel larger than padded input for {this}");
    }

    public void ValidateForward(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias)
    {
        const string op = "conv2d";
        Validate(op);
        Check.Exactly(op, "x", x, DType.F32, InputLength, ToString());
        Check.Exactly(op, "w", w, DType.F32, WeightLength, ToString());
        Check.Exactly(op, "y", y, DType.F32, OutputLength, ToString());
        if (bias != null) Check.Exactly(op, "bias", bias, DType.F32, OutC, ToString());
    }

    public void ValidateGradInput(DeviceBuffer dx, DeviceBuffer dy, DeviceBuffer w)
    {
        const string op = "conv2d grad input";
        Validate(op);
        Check.Exactly(op, "dx", dx, DType.F32, InputLength, ToString());
        Check.Exactly(op, "dy", dy, DType.F32, OutputLength, ToString());
        Check.Exactly(op, "w", w, DType.F32, WeightLength, ToString());
    }

    public void ValidateGradWeight(DeviceBuffer dw, DeviceBuffer? dbias, DeviceBuffer dy, DeviceBuffer x)
    {
        const string op = "conv2d grad weight";
        Validate(op);
        Check.Exactly(op, "dw", dw, DType.F32, WeightLength, ToString());
        Check.Exactly(op, "dy", dy, DType.F32, OutputLength, ToString());
        Check.Exactly(op, "x", x, DType.F32, InputLength, ToString());
        if (dbias != null) Check.Exactly(op, "dbias", dbias, DType.F32, OutC, ToString());
    }
}

/// <summary>Multi-head scaled-dot-product attention. Q is (B, Lq, H, D) and K, V are (B, Lk, H, D): the layout a linear
/// projection writes, so no transpose is needed. O is (B, Lq, H, D); Lse, the log-sum-exp of each score row, is (B, H, Lq).
/// Causal masks key j > query i (the CLIP text encoder).</summary>
public readonly record struct AttentionShape(int Batch, int Heads, int QueryLen, int KeyLen, int HeadDim, bool Causal = false, float Scale = 0f)
{
    public float EffectiveScale => Scale != 0f ? Scale : 1f / MathF.Sqrt(HeadDim);
    public long QueryLength => (long)Batch * QueryLen * Heads * HeadDim;
    public long KeyLength => (long)Batch * KeyLen * Heads * HeadDim;
    public long LseLength => (long)Batch * Heads * QueryLen;
    public double Flops => 4.0 * Batch * Heads * QueryLen * KeyLen * HeadDim;
    public override string ToString() => $"B={Batch} H={Heads} Lq={QueryLen} Lk={KeyLen} D={HeadDim}{(Causal ? " causal" : "")}";

    public void Validate(string op)
    {
        Check.Positive(op, ("batch", Batch), ("heads", Heads), ("query length", QueryLen), ("key length", KeyLen), ("head dim", HeadDim));
        if (HeadDim > 256) throw new ArgumentException($"{op}: head dim {HeadDim} is above the supported 256");
        if (QueryLength > int.MaxValue || KeyLength > int.MaxValue)
            throw new ArgumentException($"{op}: tensors of {this} exceed 2^31 − 1 elements");
        if (!float.IsFinite(Scale)) throw new ArgumentException($"{op}: scale {Scale} is not finite");
    }

    public void ValidateForward(DeviceBuffer o, DeviceBuffer lse, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v)
    {
        const string op = "attention";
        Validate(op);
        string shape = ToString();
        Check.Exactly(op, "o", o, DType.F32, QueryLength, shape);
        Check.Exactly(op, "lse", lse, DType.F32, LseLength, shape);
        Check.Exactly(op, "q", q, DType.F32, QueryLength, shape);
        Check.Exactly(op, "k", k, DType.F32, KeyLength, shape);
        Check.Exactly(op, "v", v, DType.F32, KeyLength, shape);
    }

    public void ValidateBackward(DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, DeviceBuffer dout, DeviceBuffer q,
        DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse)
    {
        const string op = "attention backward";
        Validate(op);
        string shape = ToString();
        Check.Exactly(op, "dq", dq, DType.F32, QueryLength, shape);
        Check.Exactly(op, "dk", dk, DType.F32, KeyLength, shape);
        Check.Exactly(op, "dv", dv, DType.F32, KeyLength, shape);
        Check.Exactly(op, "dout", dout, DType.F32, QueryLength, shape);
        Check.Exactly(op, "q", q, DType.F32, QueryLength, shape);
        Check.Exactly(op, "k", k, DType.F32, KeyLength, shape);
        Check.Exactly(op, "v", v, DType.F32, KeyLength, shape);
        Check.Exactly(op, "o", o, DType.F32, QueryLength, shape);
        Check.Exactly(op, "lse", lse, DType.F32, LseLength, shape);
    }
}

/// <summary>One AdamW step (decoupled weight decay, bias correction). Step counts from 1. The gradient is first
/// multiplied by GradScale (1/loss-scale for mixed precision, or a clipping factor).</summary>
public readonly record struct AdamWStep(float Lr, int Step, float Beta1 = 0.9f, float Beta2 = 0.999f, float Eps = 1e-8f,
    float WeightDecay = 1e-2f, float GradScale = 1f)
{
    /// <summary>The step's scalars, folded once in double for every tier, in PyTorch's order of operations:
    /// p ← p·Decay − StepSize · m / (√v / SqrtBc2 + Eps), with bc = 1 − βᵗ.</summary>
    public AdamWConstants Constants()
    {
        double bc1 = 1 - Math.Pow(Beta1, Step), bc2 = 1 - Math.Pow(Beta2, Step);
        return new AdamWConstants(GradScale, Beta1, (float)(1 - (double)Beta1), Beta2, (float)(1 - (double)Beta2),
            (float)(1 - (double)Lr * WeightDecay), (float)(Lr / bc1), (float)Math.Sqrt(bc2), Eps);
    }

    public void Validate(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, long n)
    {
        const string op = "adamw";
        ValidateScalars(op, n);
        string shape = $"(n={n})";
        Check.Exactly(op, "param", param, DType.F32, n, shape);
        Check.Exactly(op, "grad", grad, DType.F32, n, shape);
        Check.Exactly(op, "m", m, DType.F32, n, shape);
        Check.Exactly(op, "v", v, DType.F32, n, shape);
    }

    /// <summary>The checks of <see cref="IBackend.AdamW8bit"/>: u8 codes (n) and f32 absmax (⌈n / BlockSize⌉) per moment.</summary>
    public void Validate8bit(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer mMax, DeviceBuffer v, DeviceBuffer vMax, long n)
    {
        const string op = "adamw 8-bit";
        ValidateScalars(op, n);
        string shape = $"(n={n}, blocks of {DynamicMap.BlockSize})";
        long blocks = DynamicMap.Blocks(n);
        Check.Exactly(op, "param", param, DType.F32, n, shape);
        Check.Exactly(op, "grad", grad, DType.F32, n, shape);
        Check.Exactly(op, "m", m, DType.U8, n, shape);
        Check.Exactly(op, "m absmax", mMax, DType.F32, blocks, shape);
        Check.Exactly(op, "v", v, DType.U8, n, shape);
        Check.Exactly(op, "v absmax", vMax, DType.F32, blocks, shape);
    }

    void ValidateScalars(string op, long n)
    {
        Check.Positive(op, ("n", n), ("step", Step));
        if (!(Beta1 >= 0 && Beta1 < 1 && Beta2 >= 0 && Beta2 < 1))
            throw new ArgumentException($"{op}: betas ({Beta1}, {Beta2}) must lie in [0, 1)");
        if (!(Lr >= 0) || !(Eps > 0) || !(WeightDecay >= 0) || !float.IsFinite(GradScale))
            throw new ArgumentException($"{op}: need lr ≥ 0, eps > 0, weight decay ≥ 0 and a finite grad scale, got {this}");
    }
}

/// <summary>AdamWStep's scalars as the kernels use them (AdamWStep.Constants): g = grad·GradScale,
/// m ← Beta1·m + OneMinusBeta1·g, v ← Beta2·v + OneMinusBeta2·g², p ← p·Decay − StepSize·m / (√v / SqrtBc2 + Eps).</summary>
public readonly record struct AdamWConstants(float GradScale, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2,
    float Decay, float StepSize, float SqrtBc2, float Eps);

/// <summary>Pointwise activations. Gelu is the exact erf form, GeluTanh the tanh approximation, QuickGelu x·σ(1.702x).</summary>
public enum UnaryOp { Silu, Gelu, GeluTanh, QuickGelu }

public enum BinaryOp { Add, Sub, Mul, Div }
