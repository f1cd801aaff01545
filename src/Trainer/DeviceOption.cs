// The --device option of the sub-commands that compute: auto (a CUDA GPU when present, else cpu), cuda, cpu or reference;
// and --allow_tf32 beside it for those that train.
using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using DreamBooth.Kernels;
using DreamBooth.Kernels.Ilgpu;

namespace DreamBooth.Trainer;

/// <summary>Each command adds its own instance (`command.Options.Add(device)`); its action calls TryOpen and returns 1
/// when that fails, so a missing GPU is a one-line message and a non-zero exit, never a stack trace.</summary>
public sealed class DeviceOption : Option<string>
{
    public DeviceOption() : base("--device")
    {
        Description = "Compute backend: auto (cuda when a CUDA GPU is present, else cpu), cuda, cpu, or reference (slow, double precision)";
        DefaultValueFactory = _ => "auto";
        AcceptOnlyFromAmong("auto", "cuda", "cpu", "reference");
    }

    /// <summary>diffusers' --allow_tf32, for the commands that add it beside this option: f32 matrix products and
    /// convolutions on TF32 tensor cores on the CUDA tier.</summary>
    public Option<bool> AllowTf32 { get; } = new("--allow_tf32", "--allow-tf32")
    {
        Description = "CUDA tier: f32 matrix products and convolutions on TF32 tensor cores (inputs rounded to 10-bit significands, f32 sums), " +
            "as diffusers' --allow_tf32; GPUs of compute capability 8.0 and newer; the cpu tier has no TF32 and says so",
    };

    /// <summary>The chosen backend (with TF32 allowed when --allow_tf32 is given and the command has it), or false
    /// after writing why it could not be opened to stderr.</summary>
    public bool TryOpen(ParseResult parse, [NotNullWhen(true)] out IBackend? backend)
    {
        string choice = parse.GetValue(this) ?? "auto";
        try
        {
            backend = choice == "auto" ? Backends.Auto() : Backends.Create(choice);
            if (parse.GetResult(AllowTf32) is not null && parse.GetValue(AllowTf32))
            {
                if (backend is IlgpuBackend { TensorCores: true } cuda) cuda.AllowTf32 = true;
                else if (backend is IlgpuBackend)
                    Console.Error.WriteLine("dreambooth: --allow_tf32 has no effect on this GPU (TF32 needs compute capability 8.0 or newer)");
                else Console.Error.WriteLine($"dreambooth: --allow_tf32 has no effect on the {backend.Name} tier (TF32 is a tensor-core format of CUDA GPUs)");
            }
            return true;
        }
        catch (Exception e)   // no GPU, or a driver that fails to start: both end the command with the reason
        {
            Console.Error.WriteLine($"dreambooth: --device {choice}: {e.Message}");
            backend = null;
            return false;
        }
    }
}
