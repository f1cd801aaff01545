// Paths of the test inputs under tests/data, copied beside the test assembly, and scratch folders for written files.
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
}
