// Compiles every [GpuKernel] method to PTX without a GPU, and assembles it with ptxas for the register/shared-memory table.
using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace DreamBooth.Kernels.Ilgpu;

/// <summary>One kernel's PTX (compute_80, PTX ISA 7.8), and what ptxas reported when it assembled it for one GPU.</summary>
public sealed record PtxKernel(string Name, string Ptx);

public sealed record PtxasReport(string Name, string Arch, int Registers, int SharedBytes, int StackBytes, int SpillStores, int SpillLoads);

public static partial class Ptx
{
    /// <summary>The GPUs the PTX is assembled for: Ampere (A100) and Hopper (H100). The PTX itself targets sm_80 with PTX
    /// ISA 7.8, the newest the ptxas of CUDA 11.8 (Debian's) accepts; ILGPU 1.5.3 writes `.target sm_80` for SM_90 under
    /// that ISA, and sm_80 PTX is valid input for an sm_90 build, as a driver's JIT would use it.</summary>
    public static readonly string[] Architectures = ["sm_80", "sm_90"];

    public static IEnumerable<(MethodInfo Method, GpuKernelAttribute Kernel)> Kernels() =>
        from type in typeof(Ptx).Assembly.GetTypes()
        from method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
        let kernel = method.GetCustomAttribute<GpuKernelAttribute>()
        where kernel != null
        orderby kernel.Name
        select (method, kernel);

    /// <summary>PTX of every kernel; needs no driver.</summary>
    public static List<PtxKernel> CompileAll()
    {
        using var context = Context.Create(b => b.EnableAlgorithms());
        using var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_78, null!);
        var result = new List<PtxKernel>();
        foreach (var (method, kernel) in Kernels())
        {
            var entry = kernel.ExplicitlyGrouped
                ? EntryPointDescription.FromExplicitlyGroupedKernel(method)
                : EntryPointDescription.FromImplicitlyGroupedKernel(method);
            var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
            result.Add(new PtxKernel(kernel.Name, compiled.PTXAssembly));
        }
        return result;
    }

    /// <summary>ptxas from DREAMBOOTH_PTXAS, the repository's .cache/ptxas (where .ci/run puts it), or PATH; null if absent.</summary>
    public static string? FindPtxas()
    {
        var candidates = new List<string?> { Environment.GetEnvironmentVariable("DREAMBOOTH_PTXAS") };
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            candidates.Add(Path.Combine(dir.FullName, ".cache", "ptxas", "usr", "bin", "ptxas"));
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(p => Path.Combine(p, "ptxas")));
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>Assembles one kernel's PTX for a GPU (sm_80, sm_90) with `ptxas -v`; throws with ptxas's message on any error.</summary>
    public static PtxasReport Assemble(string ptxas, PtxKernel kernel, string arch)
    {
        string file = Path.Combine(Path.GetTempPath(), $"dreambooth-{Environment.ProcessId}-{kernel.Name}-{arch}.ptx");
        File.WriteAllText(file, kernel.Ptx);
        try
        {
            var start = new ProcessStartInfo(ptxas, ["-arch=" + arch, "-v", file, "-o", "/dev/null"])
            { RedirectStandardError = true, RedirectStandardOutput = true };
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {ptxas}");
            string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"ptxas rejected kernel '{kernel.Name}' for {arch} (exit {process.ExitCode}):\n{output}");
            return new PtxasReport(kernel.Name, arch, Number(Registers(), output), Number(Shared(), output),
                Number(Stack(), output), Number(SpillStores(), output), Number(SpillLoads(), output));
        }
        finally
        {
            File.Delete(file);
        }
    }

    static int Number(Regex pattern, string text) => pattern.Match(text) is { Success: true } m ? int.Parse(m.Groups[1].Value) : 0;

    [GeneratedRegex(@"Used (\d+) registers")] private static partial Regex Registers();
    [GeneratedRegex(@"(\d+) bytes smem")] private static partial Regex Shared();
    [GeneratedRegex(@"(\d+) bytes stack frame")] private static partial Regex Stack();
    [GeneratedRegex(@"(\d+) bytes spill stores")] private static partial Regex SpillStores();
    [GeneratedRegex(@"(\d+) bytes spill loads")] private static partial Regex SpillLoads();
}
