// `ptx`: the CUDA tier's kernels compiled to PTX and assembled by ptxas: registers, shared memory and spills per kernel.
using DreamBooth.Kernels.Ilgpu;

namespace DreamBooth.Perf;

static class PtxTable
{
    public static void Run(Options o)
    {
        var compiled = Ptx.CompileAll();
        if (o.Text("dump") is { } dir)
        {
            Directory.CreateDirectory(dir);
            foreach (var k in compiled) File.WriteAllText(Path.Combine(dir, $"{k.Name}.ptx"), k.Ptx);
            Console.WriteLine($"wrote {compiled.Count} PTX files to {dir}");
        }
        string ptxas = Ptx.FindPtxas() ?? throw new ArgumentException("ptxas not found: run .ci/fetch-ptxas or set DREAMBOOTH_PTXAS");
        Console.WriteLine($"{"kernel",-22} {"arch",-6} {"registers",9} {"smem bytes",10} {"stack",6} {"spill st",8} {"spill ld",8}");
        foreach (var arch in Ptx.Architectures)
        foreach (var k in compiled)
        {
            var r = Ptx.Assemble(ptxas, k, arch);
            Console.WriteLine($"{r.Name,-22} {r.Arch,-6} {r.Registers,9} {r.SharedBytes,10} {r.StackBytes,6} {r.SpillStores,8} {r.SpillLoads,8}");
        }
    }
}
