// One error path for every sub-command: a bad input becomes one line on stderr and exit code 1, never a stack trace.
namespace DreamBooth.Trainer;

static class Guard
{
    /// <summary>Runs a command's action; a bad input (missing file, malformed weights, wrong config or argument, a
    /// request too large for memory) prints "dreambooth NAME: problem" on stderr and returns 1.</summary>
    public static int Run(string name, Func<int> action)
    {
        try { return action(); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException
                                      or KeyNotFoundException or InvalidOperationException or ArithmeticException or OutOfMemoryException)
        {
            Console.Error.WriteLine($"dreambooth {name}: {OneLine(e)}");
            return 1;
        }
    }

    /// <summary>Fails before any work when the folder a command writes into is an existing file.</summary>
    public static void ExpectFolder(string option, string path)
    {
        if (File.Exists(path)) throw new IOException($"{option} {path} is a file, not a folder");
    }

    /// <summary>Fails before any work when the output folder is a file, or holds anything and --overwrite was not given;
    /// <paramref name="replaced"/> says what --overwrite would replace.</summary>
    public static void ExpectEmpty(string option, string path, bool overwrite, string replaced)
    {
        ExpectFolder(option, path);
        if (!overwrite && Directory.Exists(path) && Directory.EnumerateFileSystemEntries(path).Any())
            throw new IOException($"{option} {path} is not empty; choose an empty folder, or pass --overwrite to replace {replaced}");
    }

    /// <summary>
    /// Readies the folder a command writes into, before any work: an existing one must be empty unless
    /// <paramref name="overwrite"/>; the folder is created and probed (<see cref="Writable"/>), so an unwritable place
    /// fails now, not after the work. Returns whether it was created here (then <see cref="RemoveIfEmpty"/> undoes it).
    /// </summary>
    public static bool PrepareOutput(string option, string path, bool overwrite)
    {
        ExpectEmpty(option, path, overwrite, "what this command wrote there");
        bool existed = Directory.Exists(path);
        try { Writable(option, path); }
        catch (IOException) { if (!existed) RemoveIfEmpty(path); throw; }
        return !existed;
    }

    /// <summary>Creates the folder if needed and writes and removes a probe file in it: a read-only, full or forbidden place
    /// fails before any work with "OPTION PATH: cannot write there (why)".</summary>
    public static void Writable(string option, string path)
    {
        string probe = Path.Combine(path, $".write-test-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(path);
            File.WriteAllBytes(probe, [0]);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(probe); }   // a full disk may have created it empty
            catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            throw new IOException($"{option} {path}: cannot write there ({Reason(e)})");   // not the probe's own name
        }
    }

    /// <summary>Removes a folder this command created when a failed run left nothing in it.</summary>
    public static void RemoveIfEmpty(string path)
    {
        try { if (Directory.Exists(path) && !Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>An I/O failure's reason without the (often temporary) path .NET appends: "No space left on device".</summary>
    public static string Reason(Exception e) =>
        System.Text.RegularExpressions.Regex.Replace(e.Message.Split('\n')[0], @"\s*:?\s*'[^']*'", "").TrimEnd('.', ' ', ':');

    /// <summary>The message's first line, without ArgumentException's " (Parameter 'name')" suffix.</summary>
    static string OneLine(Exception e)
    {
        if (e is OutOfMemoryException and not InsufficientMemoryException) return "out of memory: the request needs more memory than this machine has (fewer or smaller images?)";
        string message = e.Message.Split('\n')[0].TrimEnd();
        return e is ArgumentException { ParamName: { } p } ? message.Replace($" (Parameter '{p}')", "") : message;
    }
}
