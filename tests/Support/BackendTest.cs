// Base of every kernel test fixture: runs the same test bodies once per tier (reference, cpu, cpu on Vector256, and the
// CUDA tier on ILGPU's CPU emulator), and the fixture builder that leaves the host-scale cases out of the emulated tier.
using DreamBooth.Kernels;
using NUnit.Framework;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace DreamBooth.Tests.Support;

/// <summary>
/// Tolerances: each file's constants hold for every tier unless the file also names a Cuda one (picked with Tier), with
/// the reason the CUDA tier differs: f32 running sums where the Cpu tier widens to double (ReduceKernels), f32
/// transcendental functions where it uses double (Box-Muller). On the emulator XMath.Exp/Log/Tanh are .NET's precise
/// functions, so the elementwise, softmax and attention bounds of the cpu tier hold as they are; a GPU's
/// ex2/lg2.approx (a few ulp) is not what these runs measure.
/// </summary>
[TierFixtures]
public abstract class BackendTest(string backendName)
{
    /// <summary>The CUDA tier's kernels on ILGPU's CPU emulator (Backends.CreateEmulated): the fixture name of the third tier.</summary>
    public const string Emulated = "cuda-emulated";

    /// <summary>The category of a case sized for the host tiers (large shapes, or sizes aimed at the Cpu tier's blocking
    /// and threading): the emulated tier leaves it out, because the emulator costs microseconds per GPU thread and
    /// milliseconds per group barrier or warp shuffle round. Every test keeps small cases that run on all three tiers
    /// and cross the CUDA kernels' tile boundaries.</summary>
    public const string HostScale = "HostScale";

    /// <summary>The cpu tier held to Vector256 (CpuBackend(vector512: false)): the path machines without AVX-512 take.
    /// The backend's one width decision reaches every cpu kernel, so every op runs on it here. On such a machine it is the
    /// cpu tier itself.</summary>
    public const string CpuVector256 = "cpu-vector256";

    /// <summary>The CUDA tier on a real GPU: a fourth fixture of every body when <see cref="GpuVariable"/> is 1 (the device
    /// check sets it on the lent GPU machine; a machine without a GPU then fails those fixtures' setup, loudly).</summary>
    public const string Cuda = "cuda";

    public const string GpuVariable = "DREAMBOOTH_TEST_GPU";

    /// <summary>Every tier a kernel test runs on: reference, cpu, cpu on Vector256, the emulated CUDA tier, and with
    /// DREAMBOOTH_TEST_GPU=1 the CUDA tier on the GPU.</summary>
    public static IEnumerable<string> BackendNames =>
        [.. Backends.Names, CpuVector256, Emulated, .. Environment.GetEnvironmentVariable(GpuVariable) == "1" ? new[] { Cuda } : []];

    /// <summary>The CUDA tier's fixtures only, for tests of what only it has (tensor cores, TF32): emulated, and on the
    /// GPU with DREAMBOOTH_TEST_GPU=1.</summary>
    public static IEnumerable<string> CudaTierNames => BackendNames.Where(name => name is Emulated or Cuda);

    /// <summary>A new backend of the tier: one of Backends.Names, Emulated or CpuVector256.</summary>
    public static IBackend NewBackend(string name) => name switch
    {
        Emulated => Backends.CreateEmulated(),
        CpuVector256 => new DreamBooth.Kernels.Cpu.CpuBackend(vector512: false),
        _ => Backends.Create(name),
    };

    /// <summary>The case, in category HostScale when host is set.</summary>
    protected static TestCaseData HostScaleIf(bool host, TestCaseData testCase) => host ? testCase.SetCategory(HostScale) : testCase;

    /// <summary>The tolerance of this tier: host for reference and cpu, cuda for the CUDA tier (emulated or on a GPU).</summary>
    protected double Tier(double host, double cuda) => IsCudaTier ? cuda : host;

    protected string BackendName { get; } = backendName;
    /// <summary>True on the CUDA tier's kernels, emulated or on a GPU.</summary>
    protected bool IsCudaTier => BackendName is Emulated or Cuda;
    protected IBackend Backend { get; private set; } = null!;
    readonly List<DeviceBuffer> _buffers = [];

    // One backend per fixture: the emulator's context and compiled kernels are costly to create (about 0.3 s, and 60-90
    // ms per kernel), so every test of the fixture shares them; the buffers of each test are disposed after it.
    [OneTimeSetUp]
    public void CreateBackend() => Backend = NewBackend(BackendName);

    [OneTimeTearDown]
    public void DisposeBackend() => Backend.Dispose();

    [TearDown]
    public void DisposeBuffers()
    {
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }

    /// <summary>A device buffer holding these values (disposed after the test).</summary>
    protected DeviceBuffer Buf(float[] values)
    {
        var b = Backend.Allocate(DType.F32, values.Length);
        Backend.Upload<float>(b, values);
        _buffers.Add(b);
        return b;
    }

    protected DeviceBuffer Buf(double[] values) => Buf(Array.ConvertAll(values, v => (float)v));

    protected DeviceBuffer Ints(int[] values)
    {
        var b = Backend.Allocate(DType.I32, values.Length);
        Backend.Upload<int>(b, values);
        _buffers.Add(b);
        return b;
    }

    /// <summary>A zero-filled buffer (disposed after the test).</summary>
    protected DeviceBuffer Zeros(long length, DType dtype = DType.F32)
    {
        var b = Backend.Allocate(dtype, length);
        _buffers.Add(b);
        return b;
    }

    protected float[] Read(DeviceBuffer buffer)
    {
        var result = new float[buffer.Length];
        Backend.Download<float>(result, buffer);
        return result;
    }
}

/// <summary>Builds one fixture of a BackendTest class per tier, like [TestFixtureSource(BackendNames)], and removes the
/// test cases of category BackendTest.HostScale from the emulated tier's fixture (so they are neither run nor reported
/// there; a parameterized test left with no case goes too). The tiers are the static property of BackendTest named by
/// source.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
public sealed class TierFixturesAttribute(string source = nameof(BackendTest.BackendNames)) : NUnitAttribute, IFixtureBuilder2
{
    readonly TestFixtureSourceAttribute _tiers = new(typeof(BackendTest), source);

    public IEnumerable<TestSuite> BuildFrom(ITypeInfo typeInfo) => Trim(_tiers.BuildFrom(typeInfo));

    public IEnumerable<TestSuite> BuildFrom(ITypeInfo typeInfo, IPreFilter filter) => Trim(_tiers.BuildFrom(typeInfo, filter));

    /// <summary>The source's suite holds one fixture per tier.</summary>
    static IEnumerable<TestSuite> Trim(IEnumerable<TestSuite> suites)
    {
        foreach (var suite in suites)
        {
            foreach (var fixture in suite.Tests.OfType<TestSuite>())
                if (fixture.Arguments is [BackendTest.Emulated]) RemoveHostScale(fixture);
            yield return suite;
        }
    }

    static void RemoveHostScale(TestSuite suite)
    {
        for (int i = suite.Tests.Count - 1; i >= 0; i--)
        {
            var test = suite.Tests[i];
            bool remove = test.Properties[PropertyNames.Category].Contains(BackendTest.HostScale);
            if (!remove && test is TestSuite cases)
            {
                RemoveHostScale(cases);
                remove = cases.Tests.Count == 0;
            }
            if (remove) suite.Tests.RemoveAt(i);
        }
    }
}
