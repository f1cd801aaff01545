// The float vector a register-tiled cpu kernel is generic over: Vector512 where the hardware runs it, else Vector256.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

/// <summary>
/// Without AVX-512, .NET runs each Vector512 operation in software on two Vector256 halves, without keeping them in
/// registers: measured at 40 % of the Vector256 FMA rate (perf `peak`). A kernel written once over TV runs as V512 on
/// AVX-512 machines and as V256 on AVX2 ones; the JIT compiles one copy per struct type, with every call inlined.
/// MaxTile is how many vectors one row of a 4-row register tile may hold with its accumulators, the loaded row of B and
/// the broadcast element all in registers: 4×5 + 5 + 1 of 32 zmm, 4×3 + 3 + 1 of 16 ymm (measured on attention: 3
/// ymm per row runs its backward 1.3× faster than 2).
/// </summary>
internal unsafe interface IVec<TV> where TV : struct, IVec<TV>
{
    static abstract int Count { get; }
    static abstract int MaxTile { get; }
    static abstract TV Zero { get; }
    static abstract TV Load(float* p);
    static abstract void Store(TV v, float* p);
    static abstract TV Create(float x);
    static abstract TV operator +(TV a, TV b);
    static abstract TV operator -(TV a, TV b);
    static abstract TV operator *(TV a, TV b);
    static abstract TV operator /(TV a, TV b);
    /// <summary>a·b + c with one rounding.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract TV Max(TV a, TV b);
    static abstract TV operator -(TV a);
    static abstract TV Abs(TV v);
    /// <summary>√v, correctly rounded.</summary>
    static abstract TV Sqrt(TV v);
    /// <summary>Nearest integer, ties to even.</summary>
    static abstract TV Round(TV v);
    /// <summary>min(max(x, lo), hi), NaN kept (a NaN gradient must reach the loss scaler's finite check).</summary>
    static abstract TV Clamp(TV x, float lo, float hi);
    /// <summary>Lane i is x[i] where a[i] &lt; b[i], else y[i].</summary>
    static abstract TV SelectLess(TV a, TV b, TV x, TV y);
    /// <summary>p·2ⁿ for integral n: in any range where ScalesAnyExponent (AVX-512's vscalefps), else for n in
    /// [−126, 127] by building 2ⁿ from its exponent bits.</summary>
    static abstract TV ScaleByPow2(TV p, TV n);
    static abstract bool ScalesAnyExponent { get; }
    /// <summary>The first count (≤ Count) floats at p, zero padded; p[count..] are never read.</summary>
    static abstract TV LoadTail(float* p, long count);
    /// <summary>The first count (≤ Count) lanes of v to p; p[count..] are left as they are.</summary>
    static abstract void StoreTail(TV v, float* p, long count);
    /// <summary>Lane i is p[i] where 0 ≤ start + i &lt; limit, else 0; the other p[i] are never read (a masked load).</summary>
    static abstract TV LoadWithin(float* p, int start, int limit);
    /// <summary>2^x for x ≤ 0 (SoftmaxExp.Exp2).</summary>
    static abstract TV Exp2(TV x);
    /// <summary>Lane i is a[i] where start + i &lt; limit, else b[i].</summary>
    static abstract TV SelectBelow(int start, int limit, TV a, TV b);
    static abstract float Sum(TV v);
    /// <summary>Whether the shuffles below run here (they need x86's AVX-512F or AVX).</summary>
    static abstract bool HasShuffles { get; }
    /// <summary>dst[c·dstStride + r] = src[r·srcStride + c]·scale over a Count×Count block, in registers; with scale 1
    /// the bits move unchanged (any 4-byte data).</summary>
    static abstract void TransposeBlock(float* dst, long dstStride, float* src, long srcStride, float scale);
    /// <summary>Splits 4·Count floats by index mod 4: phases[s·stride + t] = line[4t + s] for s &lt; 4, t &lt; Count.</summary>
    static abstract void Deinterleave4(float* phases, long stride, float* line);
    /// <summary>The inverse for four vectors: line[4t + j] = y_j[t].</summary>
    static abstract void Interleave4(float* line, TV y0, TV y1, TV y2, TV y3);
}

internal readonly unsafe struct V512(Vector512<float> v) : IVec<V512>
{
    readonly Vector512<float> _v = v;
    public static int Count => 16;
    public static int MaxTile => 5;
    public static V512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Create(float x) => new(Vector512.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator +(V512 a, V512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a, V512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator *(V512 a, V512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator /(V512 a, V512 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Fma(V512 a, V512 b, V512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Max(V512 a, V512 b) => new(Vector512.MaxNative(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Exp2(V512 x) => new(SoftmaxExp.Exp2(x._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 SelectBelow(int start, int limit, V512 a, V512 b) => new(Vector512.ConditionalSelect(
        Vector512.LessThan(Vector512<int>.Indices + Vector512.Create(start), Vector512.Create(limit)).AsSingle(), a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V512 v) => Vector512.Sum(v._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a) => new(-a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Abs(V512 v) => new(Vector512.Abs(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sqrt(V512 v) => new(Vector512.Sqrt(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Round(V512 v) => new(Vector512.Round(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Clamp(V512 x, float lo, float hi) => new(Vector512.Min(Vector512.Max(x._v, Vector512.Create(lo)), Vector512.Create(hi)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 SelectLess(V512 a, V512 b, V512 x, V512 y) => new(Vector512.ConditionalSelect(Vector512.LessThan(a._v, b._v), x._v, y._v));
    public static bool ScalesAnyExponent => Avx512F.IsSupported;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 ScaleByPow2(V512 p, V512 n) => Avx512F.IsSupported ? new(Avx512F.Scale(p._v, n._v))
        : new(p._v * ((Vector512.ConvertToInt32(n._v) + Vector512.Create(127)) << 23).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadTail(float* p, long count) => new(Chunks.LoadTail<Vector512<float>>(p, count));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadWithin(float* p, int start, int limit) => new(Avx512F.MaskLoad(p,
        Vector512.LessThan((Vector512<int>.Indices + Vector512.Create(start)).AsUInt32(), Vector512.Create((uint)limit)).AsSingle(),
        Vector512<float>.Zero));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTail(V512 v, float* p, long count) => Chunks.StoreTail(p, v._v, count);

    public static bool HasShuffles => Avx512F.IsSupported;

    public static void Deinterleave4(float* phases, long stride, float* line)
    {
        var halves = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);   // low's lanes 0..7, then high's
        Vector512<float> v0 = Vector512.Load(line), v1 = Vector512.Load(line + 16), v2 = Vector512.Load(line + 32), v3 = Vector512.Load(line + 48);
        for (int s = 0; s < 4; s++)
        {
            var every4 = Vector512.CreateSequence(s, 4);          // lanes 0..7: s, s+4, .., s+28 of (lower, upper)
            var low = Avx512F.PermuteVar16x32x2(v0, every4, v1);
            var high = Avx512F.PermuteVar16x32x2(v2, every4, v3);
            Avx512F.PermuteVar16x32x2(low, halves, high).Store(phases + s * stride);
        }
    }

    public static void Interleave4(float* line, V512 y0, V512 y1, V512 y2, V512 y3)
    {
        var zipLow = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var zipHigh = zipLow + Vector512.Create(8);
        var pairsLow = Vector512.Create(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
        var pairsHigh = pairsLow + Vector512.Create(8);
        Vector512<float> a = Avx512F.PermuteVar16x32x2(y0._v, zipLow, y1._v), b = Avx512F.PermuteVar16x32x2(y0._v, zipHigh, y1._v);   // y0, y1 pairs
        Vector512<float> c = Avx512F.PermuteVar16x32x2(y2._v, zipLow, y3._v), d = Avx512F.PermuteVar16x32x2(y2._v, zipHigh, y3._v);   // y2, y3 pairs
        Avx512F.PermuteVar16x32x2(a, pairsLow, c).Store(line);
        Avx512F.PermuteVar16x32x2(a, pairsHigh, c).Store(line + 16);
        Avx512F.PermuteVar16x32x2(b, pairsLow, d).Store(line + 32);
        Avx512F.PermuteVar16x32x2(b, pairsHigh, d).Store(line + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Row512(float* p, Vector512<float> scale, bool scaled) => scaled ? Vector512.Load(p) * scale : Vector512.Load(p);

    public static void TransposeBlock(float* dst, long dstStride, float* src, long srcStride, float scale)
    {
        var vs = Vector512.Create(scale);
        bool scaled = scale != 1f;   // scale 1 moves bits, exact for any 4-byte data (ints, NaN payloads)
        var r0 = Row512(src + 0 * srcStride, vs, scaled);
        var r1 = Row512(src + 1 * srcStride, vs, scaled);
        var r2 = Row512(src + 2 * srcStride, vs, scaled);
        var r3 = Row512(src + 3 * srcStride, vs, scaled);
        var r4 = Row512(src + 4 * srcStride, vs, scaled);
        var r5 = Row512(src + 5 * srcStride, vs, scaled);
        var r6 = Row512(src + 6 * srcStride, vs, scaled);
        var r7 = Row512(src + 7 * srcStride, vs, scaled);
        var r8 = Row512(src + 8 * srcStride, vs, scaled);
        var r9 = Row512(src + 9 * srcStride, vs, scaled);
        var r10 = Row512(src + 10 * srcStride, vs, scaled);
        var r11 = Row512(src + 11 * srcStride, vs, scaled);
        var r12 = Row512(src + 12 * srcStride, vs, scaled);
        var r13 = Row512(src + 13 * srcStride, vs, scaled);
        var r14 = Row512(src + 14 * srcStride, vs, scaled);
        var r15 = Row512(src + 15 * srcStride, vs, scaled);
        // Pairs of rows interleaved, then pairs of pairs (as doubles), then 128-bit lanes across four rows twice.
        var t0 = Avx512F.UnpackLow(r0, r1);
        var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3);
        var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5);
        var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7);
        var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9);
        var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11);
        var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13);
        var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15);
        var t15 = Avx512F.UnpackHigh(r14, r15);
        r0 = Avx512F.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r1 = Avx512F.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r2 = Avx512F.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r3 = Avx512F.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r4 = Avx512F.UnpackLow(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r5 = Avx512F.UnpackHigh(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r6 = Avx512F.UnpackLow(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r7 = Avx512F.UnpackHigh(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r8 = Avx512F.UnpackLow(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r9 = Avx512F.UnpackHigh(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r10 = Avx512F.UnpackLow(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r11 = Avx512F.UnpackHigh(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r12 = Avx512F.UnpackLow(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r13 = Avx512F.UnpackHigh(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r14 = Avx512F.UnpackLow(t13.AsDouble(), t15.AsDouble()).AsSingle();
        r15 = Avx512F.UnpackHigh(t13.AsDouble(), t15.AsDouble()).AsSingle();
        t0 = Avx512F.Shuffle4x128(r0, r4, 0x88);
        t1 = Avx512F.Shuffle4x128(r1, r5, 0x88);
        t2 = Avx512F.Shuffle4x128(r2, r6, 0x88);
        t3 = Avx512F.Shuffle4x128(r3, r7, 0x88);
        t4 = Avx512F.Shuffle4x128(r0, r4, 0xdd);
        t5 = Avx512F.Shuffle4x128(r1, r5, 0xdd);
        t6 = Avx512F.Shuffle4x128(r2, r6, 0xdd);
        t7 = Avx512F.Shuffle4x128(r3, r7, 0xdd);
        t8 = Avx512F.Shuffle4x128(r8, r12, 0x88);
        t9 = Avx512F.Shuffle4x128(r9, r13, 0x88);
        t10 = Avx512F.Shuffle4x128(r10, r14, 0x88);
        t11 = Avx512F.Shuffle4x128(r11, r15, 0x88);
        t12 = Avx512F.Shuffle4x128(r8, r12, 0xdd);
        t13 = Avx512F.Shuffle4x128(r9, r13, 0xdd);
        t14 = Avx512F.Shuffle4x128(r10, r14, 0xdd);
        t15 = Avx512F.Shuffle4x128(r11, r15, 0xdd);
        Avx512F.Shuffle4x128(t0, t8, 0x88).Store(dst + 0 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0x88).Store(dst + 1 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0x88).Store(dst + 2 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0x88).Store(dst + 3 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0x88).Store(dst + 4 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0x88).Store(dst + 5 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0x88).Store(dst + 6 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0x88).Store(dst + 7 * dstStride);
        Avx512F.Shuffle4x128(t0, t8, 0xdd).Store(dst + 8 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0xdd).Store(dst + 9 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0xdd).Store(dst + 10 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0xdd).Store(dst + 11 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0xdd).Store(dst + 12 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0xdd).Store(dst + 13 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0xdd).Store(dst + 14 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0xdd).Store(dst + 15 * dstStride);
    }
}

internal readonly unsafe struct V256(Vector256<float> v) : IVec<V256>
{
    readonly Vector256<float> _v = v;
    public static int Count => 8;
    public static int MaxTile => 3;
    public static V256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Create(float x) => new(Vector256.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator +(V256 a, V256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a, V256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator *(V256 a, V256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator /(V256 a, V256 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Fma(V256 a, V256 b, V256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Max(V256 a, V256 b) => new(Vector256.MaxNative(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Exp2(V256 x) => new(SoftmaxExp.Exp2(x._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 SelectBelow(int start, int limit, V256 a, V256 b) => new(Vector256.ConditionalSelect(
        Vector256.LessThan(Vector256<int>.Indices + Vector256.Create(start), Vector256.Create(limit)).AsSingle(), a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V256 v) => Vector256.Sum(v._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a) => new(-a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Abs(V256 v) => new(Vector256.Abs(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sqrt(V256 v) => new(Vector256.Sqrt(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Round(V256 v) => new(Vector256.Round(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Clamp(V256 x, float lo, float hi) => new(Vector256.Min(Vector256.Max(x._v, Vector256.Create(lo)), Vector256.Create(hi)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 SelectLess(V256 a, V256 b, V256 x, V256 y) => new(Vector256.ConditionalSelect(Vector256.LessThan(a._v, b._v), x._v, y._v));
    public static bool ScalesAnyExponent => false;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 ScaleByPow2(V256 p, V256 n) => new(p._v * ((Vector256.ConvertToInt32(n._v) + Vector256.Create(127)) << 23).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadTail(float* p, long count) => new(Chunks.LoadTail<Vector256<float>>(p, count));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadWithin(float* p, int start, int limit)
    {
        var mask = Vector256.LessThan((Vector256<int>.Indices + Vector256.Create(start)).AsUInt32(), Vector256.Create((uint)limit)).AsSingle();
        if (Avx.IsSupported) return new(Avx.MaskLoad(p, mask));
        var v = Vector256<float>.Zero;
        for (int i = 0; i < Count; i++)
            if ((uint)(start + i) < (uint)limit) v = v.WithElement(i, p[i]);
        return new(v);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTail(V256 v, float* p, long count) => Chunks.StoreTail(p, v._v, count);

    public static bool HasShuffles => Avx.IsSupported;

    /// <summary>Each 128-bit group of 4 floats is one tile t: gather tiles (t, t + 4) into the halves of one register,
    /// then a 4×4 transpose inside both halves at once puts phase s of tiles 0..3 | 4..7 in one register.</summary>
    public static void Deinterleave4(float* phases, long stride, float* line)
    {
        Vector256<float> v0 = Vector256.Load(line), v1 = Vector256.Load(line + 8), v2 = Vector256.Load(line + 16), v3 = Vector256.Load(line + 24);
        var a = Avx.Permute2x128(v0, v2, 0x20);   // tiles 0 | 4
        var b = Avx.Permute2x128(v0, v2, 0x31);   // tiles 1 | 5
        var c = Avx.Permute2x128(v1, v3, 0x20);   // tiles 2 | 6
        var d = Avx.Permute2x128(v1, v3, 0x31);   // tiles 3 | 7
        Transpose4(ref a, ref b, ref c, ref d);
        a.Store(phases);
        b.Store(phases + stride);
        c.Store(phases + 2 * stride);
        d.Store(phases + 3 * stride);
    }

    /// <summary>The same steps in reverse: a 4×4 transpose in both halves makes tile t | t + 4 of (y0..y3), then the
    /// halves go back in tile order.</summary>
    public static void Interleave4(float* line, V256 y0, V256 y1, V256 y2, V256 y3)
    {
        Vector256<float> a = y0._v, b = y1._v, c = y2._v, d = y3._v;
        Transpose4(ref a, ref b, ref c, ref d);
        Avx.Permute2x128(a, b, 0x20).Store(line);        // tiles 0, 1
        Avx.Permute2x128(c, d, 0x20).Store(line + 8);    // tiles 2, 3
        Avx.Permute2x128(a, b, 0x31).Store(line + 16);   // tiles 4, 5
        Avx.Permute2x128(c, d, 0x31).Store(line + 24);   // tiles 6, 7
    }

    /// <summary>Transposes the 4×4 block in each 128-bit half of (a, b, c, d) as rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose4(ref Vector256<float> a, ref Vector256<float> b, ref Vector256<float> c, ref Vector256<float> d)
    {
        var t0 = Avx.UnpackLow(a, b);    // a0 b0 a1 b1
        var t1 = Avx.UnpackHigh(a, b);   // a2 b2 a3 b3
        var t2 = Avx.UnpackLow(c, d);
        var t3 = Avx.UnpackHigh(c, d);
        a = Avx.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();    // a0 b0 c0 d0
        b = Avx.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        c = Avx.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        d = Avx.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Row256(float* p, Vector256<float> scale, bool scaled) => scaled ? Vector256.Load(p) * scale : Vector256.Load(p);

    public static void TransposeBlock(float* dst, long dstStride, float* src, long srcStride, float scale)
    {
        var vs = Vector256.Create(scale);
        bool scaled = scale != 1f;   // scale 1 moves bits, exact for any 4-byte data (ints, NaN payloads)
        var r0 = Row256(src + 0 * srcStride, vs, scaled);
        var r1 = Row256(src + 1 * srcStride, vs, scaled);
        var r2 = Row256(src + 2 * srcStride, vs, scaled);
        var r3 = Row256(src + 3 * srcStride, vs, scaled);
        var r4 = Row256(src + 4 * srcStride, vs, scaled);
        var r5 = Row256(src + 5 * srcStride, vs, scaled);
        var r6 = Row256(src + 6 * srcStride, vs, scaled);
        var r7 = Row256(src + 7 * srcStride, vs, scaled);
        // Pairs of rows interleaved, then pairs of pairs (as doubles), then the 128-bit halves across rows r and r + 4.
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        r0 = Avx.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r1 = Avx.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r2 = Avx.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r3 = Avx.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r4 = Avx.UnpackLow(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r5 = Avx.UnpackHigh(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r6 = Avx.UnpackLow(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r7 = Avx.UnpackHigh(t5.AsDouble(), t7.AsDouble()).AsSingle();
        Avx.Permute2x128(r0, r4, 0x20).Store(dst + 0 * dstStride);
        Avx.Permute2x128(r1, r5, 0x20).Store(dst + 1 * dstStride);
        Avx.Permute2x128(r2, r6, 0x20).Store(dst + 2 * dstStride);
        Avx.Permute2x128(r3, r7, 0x20).Store(dst + 3 * dstStride);
        Avx.Permute2x128(r0, r4, 0x31).Store(dst + 4 * dstStride);
        Avx.Permute2x128(r1, r5, 0x31).Store(dst + 5 * dstStride);
        Avx.Permute2x128(r2, r6, 0x31).Store(dst + 6 * dstStride);
        Avx.Permute2x128(r3, r7, 0x31).Store(dst + 7 * dstStride);
    }
}
