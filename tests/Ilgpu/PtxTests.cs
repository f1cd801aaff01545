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
    public void TensorCoreKernelsIssueMmaOfTheirInputTypeOnly()
    {
        // f16 and bf16 GEMMs issue mma.sync with f32 accumulation: 8 per step of 16 depth values (one per 16×8 tile of a
        // warp's 32×32), two steps per slab, into the accumulator registers their inline assembly declares, and only of
        // their own input type.
        foreach (var (name, type) in new[] { ("gemm_f16_mma", "f16"), ("gemm_bf16_mma", "bf16") })
        {
            var ptx = Compiled.Single(k => k.Name == name).Ptx;
            Assert.That(System.Text.RegularExpressions.Regex.Matches(ptx, $"mma.sync.aligned.m16n8k16.row.col.f32.{type}.{type}.f32 ").Count,
                Is.EqualTo(16), name);
            Assert.That(ptx, Does.Not.Contain(type == "f16" ? ".bf16.bf16." : ".f16.f16."), name);
            Assert.That(ptx, Does.Contain(".reg .f32 dbc<32>;"), name);
            // The kernel for GPUs below compute capability 8.0 computes the model instead, and must hold no mma, which
            // their PTX JIT would reject.
            Assert.That(Compiled.Single(k => k.Name == name + "_model").Ptx, Does.Not.Contain("mma"), name + "_model");
        }
        // f32 GEMMs and convolutions under --allow_tf32: the same 16 per slab of m16n8k8 on TF32 words, and nothing else.
        foreach (var name in new[] { "gemm_tf32_mma", "conv2d_tf32_implicit_gemm", "conv2d_tf32_grad_input_implicit_gemm", "conv2d_tf32_grad_weight_implicit_gemm" })
        {
            var tf32 = Compiled.Single(k => k.Name == name).Ptx;
            Assert.That(System.Text.RegularExpressions.Regex.Matches(tf32, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ").Count, Is.EqualTo(16), name);
            Assert.That(tf32, Does.Not.Contain("m16n8k16"), name);
        }
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
