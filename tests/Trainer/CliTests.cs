// The `dreambooth` command line as a user runs it: help, the devices list, tokenize, and clear errors for bad input.
using System.Diagnostics;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

[TestFixture]
public class CliTests
{
    /// <summary>Runs the built dreambooth.dll (copied beside the tests) with the arguments; exit code and all output.</summary>
    static (int Exit, string Output) Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "dreambooth.dll"), .. args])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + stderr.Result);
    }

    [Test]
    public void HelpListsTheCommands()
    {
        var (exit, output) = Run("--help");
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain("DreamBooth").And.Contain("devices"));
    }

    [Test]
    public void DevicesListsTheHostTiersAndTheCudaStatus()
    {
        var (exit, output) = Run("devices");
        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain("reference").And.Contain("cpu").And.Contain("cuda"));
    }

    [Test]
    public void AnUnknownCommandFailsWithAMessage()
    {
        var (exit, output) = Run("trian");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(output, Does.Contain("trian"));
    }

    [Test]
    public void TokenizePrintsTheSeventySevenIds()
    {
        var (exit, output) = Run("tokenize", "--tokenizer", DreamBooth.Tests.Models.ModelData.Path("sd15-tokenizer"), "a photo of sks dog");
        Assert.That(exit, Is.Zero, output);
        Assert.That(output.TrimEnd(), Is.EqualTo("49406 320 1125 539 48136 1929 49407" + string.Concat(Enumerable.Repeat(" 49407", 70))));
    }

    [Test]
    public void TokenizeWithAMissingFolderFailsWithOneLine()
    {
        var (exit, output) = Run("tokenize", "--tokenizer", "/no/such/tokenizer", "a dog");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(output.Trim(), Does.Contain("/no/such/tokenizer").And.Not.Contain("\n").And.Not.Contain(" at "));
        Assert.That(output.Trim().Split('\n'), Has.Length.EqualTo(1));
    }
}
