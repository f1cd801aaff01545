// The `dreambooth` entry point and the table of its sub-commands, each defined beside what it runs.
using System.CommandLine;
using DreamBooth.Kernels;

return DreamBooth.Trainer.Cli.Root().Parse(args).Invoke();

namespace DreamBooth.Trainer
{
    public static class Cli
    {
        public static RootCommand Root() => new("DreamBooth in C#: fine-tune a text-to-image diffusion model on 3-5 photos of a subject.")
        {
            Devices(),
            TokenizeCommand.Create(),
            ModelCommands.Inspect(),
            ModelCommands.InitModel(),
            ModelCommands.Sample(),
            TrainCommands.Train(),
            TrainCommands.TrainSuperResolution(),
            PretrainCommand.Create(),
            DemoCommand.Create(),
            EvalCommand.Create(),
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
                Console.WriteLine(Kernels.Ilgpu.IlgpuDevice.CudaPresent() ? "cuda" : "cuda (no CUDA device found)");
                if (!device.TryOpen(parse, out var backend)) return 1;
                using (backend) Console.WriteLine($"--device {parse.GetValue(device)} uses: {backend.Name}");
                return 0;
            });
            return devices;
        }
    }
}
