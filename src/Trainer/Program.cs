// The `dreambooth` command line: sub-commands are added as the layers below them land.
using System.CommandLine;
using DreamBooth.Kernels;
using DreamBooth.Trainer;

var root = new RootCommand("DreamBooth in C#: fine-tune a text-to-image diffusion model on 3-5 photos of a subject.");

var devices = new Command("devices", "List the compute backends this build offers, whether a CUDA GPU is present, and which one --device opens.");
var devicesDevice = new DeviceOption();
devices.Options.Add(devicesDevice);
devices.SetAction(parse =>
{
    foreach (var name in Backends.Names) Console.WriteLine(name);
    Console.WriteLine(DreamBooth.Kernels.Ilgpu.IlgpuDevice.CudaPresent() ? "cuda" : "cuda (no CUDA device found)");
    if (!devicesDevice.TryOpen(parse, out var backend)) return 1;
    using (backend) Console.WriteLine($"--device {parse.GetValue(devicesDevice)} uses: {backend.Name}");
    return 0;
});
root.Subcommands.Add(devices);
root.Subcommands.Add(DreamBooth.Trainer.TokenizeCommand.Create());
root.Subcommands.Add(ModelCommands.Inspect());
root.Subcommands.Add(ModelCommands.InitModel());
root.Subcommands.Add(ModelCommands.Sample());
root.Subcommands.Add(TrainCommands.Train());
root.Subcommands.Add(TrainCommands.TrainSuperResolution());

return root.Parse(args).Invoke();
