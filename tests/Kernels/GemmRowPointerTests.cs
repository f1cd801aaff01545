// The cpu tier's GEMM with B given by row pointers (the shifted input rows of Conv2dShifts.cs), at both vector widths.
using DreamBooth.Kernels.Cpu;
using DreamBooth.Tests.Support;
using NUnit.Framework;
using System.Runtime.Intrinsics;

namespace DreamBooth.Tests.Kernels;

[TestFixture(true)]
[TestFixture(false)]
public unsafe class GemmRowPointerTests(bool wide)
{
    // GemmTests' bound for f32 sums of k products of inputs in [-1, 1).
    static double Atol(int k) => 1e-6 + 1e-5 * Math.Sqrt(k);

    [SetUp]
    public void NeedsTheInstructions()
    {
        if (wide && !Vector512.IsHardwareAccelerated) Assert.Ignore("the 6×64 micro-kernel needs AVX-512, which this machine lacks");
    }

    // One core's Run (below the parallel threshold), and on more than one core the shared run splitting C's columns
    // (tasks read B in place) and splitting its rows (B's panels packed from the pointers); ragged panels, and depth past
    // one 256 slab.
    [TestCase(7, 130, 300)]
    [TestCase(40, 640, 300)]
    [TestCase(300, 128, 100)]
    public void MatchesTheProductOfTheRowsGathered(int m, int n, int k)
    {
        double[] a = TestData.Uniform(1, (long)m * k), b = TestData.Uniform(2, (long)k * n), bias = TestData.Uniform(3, m);
        // B's rows at scattered places in one buffer, in reverse order, each readable a whole 64-float panel past n
        int stride = n + 64 + 5;
        var expected = new double[(long)m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = bias[i];
                for (int p = 0; p < k; p++) sum += (double)(float)a[(long)i * k + p] * (float)b[(long)p * n + j];
                expected[(long)i * n + j] = sum;
            }
        float[] fa = TestData.ToFloat(a), fbias = TestData.ToFloat(bias), buffer = new float[(long)k * stride], c = new float[(long)m * n];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++) buffer[(long)(k - 1 - p) * stride + 3 + j] = (float)b[(long)p * n + j];
        var rows = new IntPtr[k];
        fixed (float* pa = fa, pbias = fbias, pbuf = buffer, pc = c)
        fixed (IntPtr* table = rows)
        {
            for (int p = 0; p < k; p++) table[p] = (IntPtr)(pbuf + (long)(k - 1 - p) * stride + 3);
            GemmKernel.Sgemm(wide, m, n, k, 1f, pa, k, false, GemmKernel.Operand.RowPointers((float**)table), 0, false, 0f, pc, n, rowBias: pbias);
        }
        Close.Assert(c, expected, Atol(k), 1e-5, $"gemm [{m}x{k}]·rows[{k}x{n}]");
    }
}
