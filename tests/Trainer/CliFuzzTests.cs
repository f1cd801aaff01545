// Fuzzing the command line: every option of every command malformed, repeated or missing, and out-of-range values; each is one line and exit 1.
using System.CommandLine;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

/// <summary>
/// Built from the command table itself (<see cref="DreamBooth.Trainer.Cli.Root"/>), so a new option is fuzzed without
/// editing this file: for every command, no arguments (a required option missing), an unknown option, and for every
/// option a malformed value ("abc" where a number is expected, an extra token where a flag is) and the option given twice.
/// Each must exit non-zero with exactly one line on stderr that names no .NET type or exception. Out-of-range values that
/// parse are listed by hand with the message each must give, all failing before any work.
/// </summary>
[TestFixture]
public class CliFuzzTests
{
    static (int Exit, string Error) Dreambooth(params string[] args) => TrainTests.Dreambooth(args);

    static void AssertOneLineError((int Exit, string Error) run, string what, string? expected = null)
    {
        Assert.That(run.Exit, Is.Not.Zero, what);
        var lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), $"{what}: {run.Error}");
        Assert.That(run.Error, Does.Not.Contain("Exception").And.Not.Contain("System."), what);
        if (expected is not null) Assert.That(run.Error, Does.Contain(expected), what);
    }

    static IEnumerable<Command> Commands() => DreamBooth.Trainer.Cli.Root().Subcommands;

    /// <summary>Where an option takes a path, a value that cannot exist; otherwise a plausible value of its type.</summary>
    static string Plausible(Option o) => o.ValueType == typeof(bool) ? "true"
        : o.ValueType == typeof(string) || o.ValueType == typeof(string[]) || Nullable.GetUnderlyingType(o.ValueType) is null && o.ValueType.IsClass
            ? "/nonexistent/dreambooth-fuzz" : "1";

    [Test]
    public void MissingUnknownMalformedAndRepeatedOptionsAreOneLineErrors()
    {
        int cases = 0;
        foreach (var command in Commands())
        {
            // train and train-sr read diffusers' options themselves (both spellings, nearest-name hints)
            bool diffusersStyle = command.Name is "train" or "train-sr";
            if (command.Options.Any(o => o.Required) || diffusersStyle)
            {
                AssertOneLineError(Dreambooth(command.Name), $"{command.Name} with no arguments");
                cases++;
            }
            AssertOneLineError(Dreambooth(command.Name, "--no-such-option", "1"), $"{command.Name} --no-such-option");
            cases++;
            foreach (var option in command.Options.Where(o => o.Name is not ("--help" or "-h" or "-?")))
            {
                var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
                if (type == typeof(int) || type == typeof(double) || type == typeof(ulong) || type == typeof(long))
                {
                    AssertOneLineError(Dreambooth(command.Name, option.Name, "abc"), $"{command.Name} {option.Name} abc");
                    cases++;
                }
                if (type != typeof(bool) && type != typeof(string[]))
                {
                    string v = Plausible(option);
                    AssertOneLineError(Dreambooth(command.Name, option.Name, v, option.Name, v), $"{command.Name} {option.Name} twice");
                    cases++;
                }
            }
        }
        TestContext.Out.WriteLine($"{cases} command lines, each one line on stderr and exit 1");
        Assert.That(cases, Is.GreaterThan(100));
    }

    [TestCase("sample --model {m} --prompt x --output {o} --steps 0", "at least one image and one step")]
    [TestCase("sample --model {m} --prompt x --output {o} --num-images 0", "at least one image and one step")]
    [TestCase("sample --model {m} --prompt x --output {o} --steps 5000", "inference steps must be in [1, 1000]")]
    [TestCase("eval --model {m} --subject {s} --samples 1", "--samples must be at least 2")]
    [TestCase("tokenize --tokenizer /nonexistent/tok x", "/nonexistent/tok")]
    public void OutOfRangeValuesFailBeforeAnyWork(string line, string expected)
    {
        string root = DreamBooth.Tests.Models.ModelData.TempFolder();
        try
        {
            string model = DreamBooth.Tests.Models.ModelData.Path("models", "toy", "base"), output = Path.Combine(root, "out"), subject = Path.Combine(root, "subject");
            Directory.CreateDirectory(subject);
            File.WriteAllBytes(Path.Combine(subject, "00.png"), []);
            var args = line.Replace("{m}", model).Replace("{o}", output).Replace("{s}", subject).Split(' ');
            AssertOneLineError(Dreambooth(args), line, expected);
        }
        finally { Directory.Delete(root, true); }
    }
}
