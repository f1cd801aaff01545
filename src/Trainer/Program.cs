// The `dreambooth` command line: sub-commands are added as the layers below them land.
using System.CommandLine;
using DreamBooth.Kernels;

var root = new RootCommand("DreamBooth in C#: fine-tune a text-to-image diffusion model on 3-5 photos of a subject.");

var devices = new Command("devices", "List the compute backends this build offers.");
devices.SetAction(_ =>
{
    foreach (var name in Backends.Names)
    {
        using var backend = Backends.Create(name);
        Console.WriteLine(backend.Name);
    }
    return 0;
});
root.Subcommands.Add(devices);

return root.Parse(args).Invoke();
