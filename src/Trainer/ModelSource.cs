// A model argument (--pretrained_model_name_or_path, --model): a diffusers folder, or a single-file SD 1.x checkpoint unpacked for the run.
using DreamBooth.Models.Formats;

namespace DreamBooth.Trainer;

/// <summary>
/// What apps share is often one .safetensors in the original SD (LDM) layout. Given one, the command reads it into a
/// temporary diffusers folder (every tensor copied bit for bit, <see cref="SingleFile.Read"/>) with the configs and
/// tokenizer of the SD 1.x architecture shipped in configs/sd15, or of --single_file_config; the folder is deleted
/// when the command ends. A folder is used as it is.
/// </summary>
public sealed class ModelSource : IDisposable
{
    readonly string? _temporary;

    ModelSource(string folder, string? temporary) => (Folder, _temporary) = (folder, temporary);

    /// <summary>The diffusers folder to load.</summary>
    public string Folder { get; }

    /// <summary>The SD 1.x configs shipped beside the binary (configs/sd15), or null when they are not there.</summary>
    public static string? DefaultConfig =>
        new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() }.Select(d => Path.Combine(d, "configs", "sd15"))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "model_index.json")));

    static bool IsSingleFile(string path) => File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    public static ModelSource Open(string path, string option, string? configDir = null)
    {
        if (!IsSingleFile(path))
        {
            if (configDir is not null) throw new ArgumentException($"--single_file_config is for a single-file {option}; {path} is not one");
            return new ModelSource(path, null);
        }
        configDir ??= DefaultConfig ?? throw new DirectoryNotFoundException(
            $"{option} {path}: a single file needs the SD 1.x configs (configs/sd15 beside the binary is missing); pass --single_file_config DIR");
        if (!File.Exists(Path.Combine(configDir, "model_index.json")))
            throw new DirectoryNotFoundException($"--single_file_config {configDir}: no model_index.json; not a diffusers folder of configs");
        string temporary = Path.Combine(Path.GetTempPath(), $"dreambooth-single-file-{Guid.NewGuid():N}");
        try
        {
            int tensors = SingleFile.Read(path, configDir, temporary);
            Console.Error.WriteLine($"{option} {path}: read {tensors} tensors of a single-file checkpoint, with the configs of {configDir}");
            return new ModelSource(temporary, temporary);
        }
        catch
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
            throw;
        }
    }

    public void Dispose()
    {
        if (_temporary is not null && Directory.Exists(_temporary)) Directory.Delete(_temporary, recursive: true);
    }
}
