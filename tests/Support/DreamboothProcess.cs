// The built dreambooth binary (dreambooth.dll, copied beside the tests) as a child process: for what needs a process of its
// own (a SIGKILL, another core count, the real entry point).
using System.Diagnostics;
using System.Text;

namespace DreamBooth.Tests.Support;

sealed class DreamboothProcess : IDisposable
{
    readonly Process _process;
    readonly StringBuilder _output = new(), _error = new();

    /// <summary>Starts dreambooth with the arguments and extra environment variables; stdout and stderr are collected as
    /// they come, so a chatty child never blocks on a full pipe.</summary>
    public DreamboothProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "dreambooth.dll"), .. args])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is { } line) lock (_output) _output.AppendLine(line); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) lock (_error) _error.AppendLine(line); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Runs to the end: exit code, stdout and stderr together, and stderr alone.</summary>
    public static (int Exit, string Output, string Error) Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var child = new DreamboothProcess(args, environment);
        child.WaitForExit(Timeout.Infinite);
        return (child.ExitCode, child.Output + child.Error, child.Error);
    }

    /// <summary>Whether it exited within the time; then its output is complete.</summary>
    public bool WaitForExit(int milliseconds)
    {
        if (!_process.WaitForExit(milliseconds)) return false;
        _process.WaitForExit();   // drains the asynchronous readers
        return true;
    }

    /// <summary>SIGKILL, as a crash or the OOM killer would stop it: no handler, no flush, no cleanup.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Output { get { lock (_output) return _output.ToString(); } }
    public string Error { get { lock (_error) return _error.ToString(); } }

    public void Dispose() => _process.Dispose();
}
