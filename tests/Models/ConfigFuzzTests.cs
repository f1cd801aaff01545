// Fuzzing the config readers: every key of the real configs removed or given a wrong value; each is a default, or a clear error naming the key.
using System.Text.Json.Nodes;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Schedulers;
using DreamBooth.Models.UNet;
using DreamBooth.Models.Vae;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

/// <summary>
/// For each real config (SD 1.5's and tiny-sd's UNet, text encoder, VAE and scheduler) and each of its keys: the key
/// removed, and the key set to each of a list of wrong values (a string, a list, an object, null, false, 0, −1, 2^40, 1e300,
/// a list of the wrong length). Loading the config and building its model must succeed (a missing key takes diffusers'
/// default) or fail with an InvalidDataException (from the reader) or an ArgumentException (from the builder) whose
/// message names the key; anything else fails the test.
/// </summary>
[TestFixture]
public class ConfigFuzzTests
{
    string dir = "";

    [SetUp] public void CreateFolder() => dir = ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    static readonly (string Model, string Component, string File)[] Configs =
    [
        ("sd15", "unet", "config.json"), ("sd15", "text_encoder", "config.json"), ("sd15", "vae", "config.json"), ("sd15", "scheduler", "scheduler_config.json"),
        ("tiny-sd", "unet", "config.json"), ("tiny-sd", "text_encoder", "config.json"), ("tiny-sd", "vae", "config.json"),
    ];

    static JsonNode?[] WrongValues() =>
        [JsonValue.Create("x"), new JsonArray(), new JsonObject(), null, JsonValue.Create(false), JsonValue.Create(0), JsonValue.Create(-1),
         JsonValue.Create(1L << 40), JsonValue.Create(1e300), new JsonArray(1, 2, 3, 4, 5, 6, 7)];

    [Test]
    public void EveryKeyRemovedOrWrongIsADefaultOrAnErrorNamingIt()
    {
        int cases = 0, loaded = 0, rejected = 0;
        var failures = new List<string>();
        foreach (var (model, component, file) in Configs)
        {
            var original = JsonNode.Parse(File.ReadAllText(ModelData.Path(model, component, file)))!.AsObject();
            foreach (string key in original.Select(p => p.Key).Where(k => !k.StartsWith('_') && k != "architectures").ToList())
                foreach (var value in WrongValues().Prepend(JsonValue.Create("<removed>")))
                {
                    var edited = original.DeepClone().AsObject();
                    if (value?.GetValueKind() == System.Text.Json.JsonValueKind.String && value.GetValue<string>() == "<removed>") edited.Remove(key);
                    else edited[key] = value?.DeepClone();
                    string path = Path.Combine(dir, file);
                    File.WriteAllText(path, edited.ToJsonString());
                    string what = $"{model}/{component}: {key} = {value?.ToJsonString() ?? "null"}";
                    cases++;
                    try
                    {
                        Build(component, path);
                        loaded++;
                    }
                    catch (Exception e) when (e is InvalidDataException or ArgumentException)
                    {
                        if (!e.Message.Contains(key) || (e is InvalidDataException && !e.Message.StartsWith(path)))
                            failures.Add($"{what}: the message does not name the key: {e.Message}");
                        rejected++;
                    }
                    catch (Exception e) { failures.Add($"{what}: {e.GetType().Name}: {e.Message}"); }
                }
        }
        TestContext.Out.WriteLine($"{cases} edited configs: {loaded} loaded and built, {rejected} rejected naming the key");
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(40)));
        Assert.That(rejected, Is.GreaterThan(cases / 2));
    }

    static void Build(string component, string path)
    {
        switch (component)
        {
            case "unet": new UNet2DConditionModel(UNet2DConditionConfig.Load(path)); break;
            case "text_encoder": new ClipTextModel(ClipTextConfig.Load(path)); break;
            case "vae": new AutoencoderKL(AutoencoderKLConfig.Load(path)); break;
            default: SchedulerFactory.FromConfig(SchedulerConfig.Load(path), null, 0).SetTimesteps(50); break;
        }
    }
}
