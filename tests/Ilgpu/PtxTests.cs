// Every ILGPU kernel compiles to PTX without a GPU, and ptxas assembles it for sm_80 and sm_90 (how CUDA code is checked here).
using DreamBooth.Kernels.Ilgpu;
using NUnit.Framework;

namespace DreamBooth.Tests.Ilgpu;

[TestFixture]
public class PtxTests
{
    static List<PtxKernel>? s_compiled;
    static List<PtxKernel> Compiled => s_compiled ??= Ptx.CompileAll();

    static string Ptxas => Ptx.FindPtxas() ??
        throw new IgnoreException("ptxas not found: run .ci/fetch-ptxas (CI does), or set DREAMBOOTH_PTXAS");

    [Test]
    public void EveryKernelHasAUniqueNameAndCompilesForEachArchitecture()
    {
        var names = Ptx.Kernels().Select(k => k.Kernel.Name).ToList();
        Assert.That(names, Is.Unique.And.Not.Empty);
        Assert.That(Compiled, Has.Count.EqualTo(names.Count));
        foreach (var k in Compiled)
            Assert.That(k.Ptx, Does.Contain(".target sm_80").And.Contain(".entry"), k.Name);
    }

    [Test]
    public void PtxasAssemblesEveryKernelWithoutSpills()
    {
        string ptxas = Ptxas;
        foreach (var arch in Ptx.Architectures)
            foreach (var kernel in Compiled)
            {
                var report = Ptx.Assemble(ptxas, kernel, arch);
                Assert.That(report.Registers, Is.GreaterThan(0), $"{kernel.Name} {arch}: no register count in ptxas -v");
                Assert.That(report.SpillStores + report.SpillLoads, Is.Zero, $"{kernel.Name} {arch} spills registers");
            }
    }

    [Test]
    public void HalfInputGemmsWidenAsTheyLoad()
    {
        // f16 elements are loaded as 16 bits and widened by the hardware conversion; bf16 ones by a shift (no conversion).
        var f16 = Compiled.Single(k => k.Name == "gemm_f16_tiled64").Ptx;
        var bf16 = Compiled.Single(k => k.Name == "gemm_bf16_tiled64").Ptx;
        Assert.That(f16, Does.Contain("ld.b16").And.Contain("cvt.f32.f16"));
        Assert.That(bf16, Does.Contain("ld.b16").And.Contain("shl.b32").And.Not.Contain("cvt.f32.f16"));
    }

    [Test]
    public void PtxasRejectsABrokenInstruction()
    {
        string ptxas = Ptxas;
        var good = Compiled.First(k => k.Name == "gemm_f32_tiled64");
        var broken = good with { Ptx = good.Ptx.Replace("bar.sync", "bar.bogus") };
        Assert.That(broken.Ptx, Is.Not.EqualTo(good.Ptx), "the GEMM's PTX has a barrier to break");
        var e = Assert.Throws<InvalidOperationException>(() => Ptx.Assemble(ptxas, broken, "sm_90"));
        Assert.That(e!.Message, Does.Contain("gemm_f32_tiled64").And.Contain("sm_90"));
    }
}
