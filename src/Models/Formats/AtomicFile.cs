// Writing a file through a temporary name beside it, renamed over the target only once complete.
namespace DreamBooth.Models.Formats;

public static class AtomicFile
{
    /// <summary>Calls write(temp) for a fresh temporary path in path's folder, then renames it over path; on any failure
    /// the temporary file is deleted and path keeps what it held before.</summary>
    public static void Write(string path, Action<string> write)
    {
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            write(temp);
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
