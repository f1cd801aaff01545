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
                                      or KeyNotFoundException or InvalidOperationException or OutOfMemoryException)
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

    /// <summary>The message's first line, without ArgumentException's " (Parameter 'name')" suffix.</summary>
    static string OneLine(Exception e)
    {
        if (e is OutOfMemoryException and not InsufficientMemoryException) return "out of memory: the request needs more memory than this machine has (fewer or smaller images?)";
        string message = e.Message.Split('\n')[0].TrimEnd();
        return e is ArgumentException { ParamName: { } p } ? message.Replace($" (Parameter '{p}')", "") : message;
    }
}
