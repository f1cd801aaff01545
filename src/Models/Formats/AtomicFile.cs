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

    /// <summary>Deletes the temporary files a killed process left in <paramref name="dir"/> and below (the .NAME.GUID.tmp
    /// of <see cref="Write"/>); the files they were to replace are whole, as before the write.</summary>
    public static void RemoveLeftovers(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (string file in Directory.EnumerateFiles(dir, ".*.tmp", SearchOption.AllDirectories).ToList())
            if (Leftover.IsMatch(Path.GetFileName(file))) File.Delete(file);
    }

    static readonly System.Text.RegularExpressions.Regex Leftover = new(@"^\..+\.[0-9a-f]{32}\.tmp$");
}
