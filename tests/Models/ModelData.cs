// Paths of the test inputs under tests/data, copied beside the test assembly, scratch folders for written files, and
// initialised parameter stores.
using DreamBooth.Autograd;
using DreamBooth.Kernels;

namespace DreamBooth.Tests.Models;

static class ModelData
{
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, "data", .. parts]);

    /// <summary>A new empty folder under the system temp folder; the caller deletes it.</summary>
    public static string TempFolder()
    {
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dreambooth-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A store for <paramref name="module"/>'s parameters on <paramref name="backend"/>, initialised from
    /// <paramref name="seed"/>; the caller disposes it.</summary>
    public static ParameterStore Initialized(IBackend backend, Module module, ulong seed)
    {
        var store = new ParameterStore(backend, module);
        store.Initialize(seed);
        return store;
    }
}
