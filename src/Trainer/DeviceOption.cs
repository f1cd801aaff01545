// The --device option of the sub-commands that compute: auto (a CUDA GPU when present, else cpu), cuda, cpu or reference.
using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using DreamBooth.Kernels;

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

    /// <summary>The chosen backend, or false after writing why it could not be opened to stderr.</summary>
    public bool TryOpen(ParseResult parse, [NotNullWhen(true)] out IBackend? backend)
    {
        string choice = parse.GetValue(this) ?? "auto";
        try
        {
            backend = choice == "auto" ? Backends.Auto() : Backends.Create(choice);
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
