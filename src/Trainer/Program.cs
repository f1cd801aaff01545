// The `dreambooth` entry point and the table of its sub-commands, each defined beside what it runs.
using System.CommandLine;
using DreamBooth.Kernels;

return DreamBooth.Trainer.Cli.Run(args);

namespace DreamBooth.Trainer
{
    public static class Cli
    {
        /// <summary>Parses and runs a command line. A parse error (an unknown, missing, repeated or malformed option) is one
        /// line on stderr, "dreambooth COMMAND: problem (see COMMAND --help)", and exit code 1, not the whole help text.</summary>
        public static int Run(string[] args)
        {
            var result = Root().Parse(args);
            if (result.Errors.Count == 0) return result.Invoke();
            string command = string.Join(' ', result.CommandResult.Command.Name is var name && name == result.RootCommandResult.Command.Name
                ? ["dreambooth"] : new[] { "dreambooth", name });
            var error = result.Errors.MinBy(e =>   // the most specific first: a stray token, then a bad value, then a missing option
                e.Message.StartsWith("Unrecognized", StringComparison.Ordinal) ? 0 : e.Message.StartsWith("Cannot parse", StringComparison.Ordinal) ? 1
                : e.Message.EndsWith("is required.", StringComparison.Ordinal) ? 3 : 2)!;
            Console.Error.WriteLine($"{command}: {Describe(error.Message, result.CommandResult.Command)} (see {command} --help)");
            return 1;
        }

        /// <summary>An unrecognized token gets the nearest option or sub-command of the command it was given to.</summary>
        static string Describe(string message, Command command)
        {
            if (!message.StartsWith("Unrecognized", StringComparison.Ordinal) || message.Split('\'') is not [_, var token, ..]) return Plain(message);
            bool option = token.StartsWith('-');
            var names = option ? command.Options.Select(o => o.Name) : command.Subcommands.Select(c => c.Name);
            string? nearest = names.MinBy(n => TrainCommandLine.EditDistance(n.TrimStart('-'), token.TrimStart('-')));
            return $"unknown {(option ? "option" : "command")} '{token}'" + (nearest is null ? "" : $"; did you mean {nearest}?");
        }

        /// <summary>System.CommandLine's message without .NET type names: "as expected type 'System.Int32'" → "as an integer".</summary>
        static string Plain(string message) => System.Text.RegularExpressions.Regex.Replace(message, @" as expected type '([^']*)'", m =>
            m.Groups[1].Value switch
            {
                var t when t.Contains("UInt") => " as a non-negative integer",
                var t when t.Contains("Int") => " as an integer",
                var t when t.Contains("Double") || t.Contains("Single") => " as a number",
                var t when t.Contains("Boolean") => " as true or false",
                _ => "",
            }).TrimEnd('.');

        public static RootCommand Root() => new("DreamBooth in C#: fine-tune a text-to-image diffusion model on 3-5 photos of a subject.")
        {
            Devices(),
            TokenizeCommand.Create(),
            ModelCommands.Inspect(),
            ModelCommands.InitModel(),
            ModelCommands.Convert(),
            ModelCommands.Sample(),
            ModelCommands.MergeLora(),
            TrainCommands.Train(),
            TrainCommands.TrainSuperResolution(),
            PretrainCommand.Create(),
            DemoCommand.Create(),
            EvalCommand.Create(),
            ProfileCommand.Create(),
        };

        static Command Devices()
        {
            var device = new DeviceOption();
            var devices = new Command("devices", "List the compute backends this build offers, whether a CUDA GPU is present, and which one --device opens.")
            {
                device,
            };
            devices.SetAction(parse =>
            {
                foreach (var name in Backends.Names) Console.WriteLine(name);
                Console.WriteLine(Backends.CudaPresent() ? "cuda" : "cuda (no CUDA device found)");
                if (!device.TryOpen(parse, out var backend)) return 1;
                using (backend) Console.WriteLine($"--device {parse.GetValue(device)} uses: {backend.Name}");
                return 0;
            });
            return devices;
        }
    }
}
