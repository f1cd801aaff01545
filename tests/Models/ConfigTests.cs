// Config records from the real SD 1.5 and tiny-sd config.json files: values, diffusers defaults, round trips, and errors naming the file.
using System.Text.Json;
using DreamBooth.Models.Configs;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class ConfigTests
{
    string dir = "";

    [SetUp] public void CreateFolder() => dir = ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    string Write(string json, string name = "config.json")
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    [Test]
    public void Sd15UNet()
    {
        var c = UNet2DConditionConfig.Load(ModelData.Path("sd15", "unet", "config.json"));
        Assert.That(c.BlockOutChannels, Is.EqualTo(new[] { 320, 640, 1280, 1280 }));
        Assert.That(c.DownBlockTypes, Is.EqualTo(new[] { "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D" }));
        Assert.That(c.UpBlockTypes, Is.EqualTo(new[] { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D" }));
        Assert.That(c.MidBlockType, Is.EqualTo("UNetMidBlock2DCrossAttn"));
        Assert.That((c.InChannels, c.OutChannels, c.SampleSize, c.LayersPerBlock, c.CrossAttentionDim), Is.EqualTo((4, 4, (int?)64, 2, 768)));
        Assert.That(c.HeadsPerBlock, Is.EqualTo(new[] { 8, 8, 8, 8 }));
        Assert.That((c.NormNumGroups, c.NormEps, c.FlipSinToCos, c.FreqShift), Is.EqualTo((32, 1e-5, true, 0)));
        Assert.That((c.UseLinearProjection, c.UpcastAttention, c.ClassEmbedType, c.NumClassEmbeds), Is.EqualTo((false, false, (string?)null, (int?)null)));
        Assert.That(c.OnlyCrossAttention, Is.All.False);
        Assert.That((c.ActFn, c.TimeEmbeddingType, c.DownsamplePadding), Is.EqualTo(("silu", "positional", 1)));
    }

    [Test]
    public void TinyUNetTakesDiffusersDefaultsForMissingKeys()
    {
        var c = UNet2DConditionConfig.Load(ModelData.Path("tiny-sd", "unet", "config.json"));
        Assert.That((c.BlockOutChannels, c.LayersPerBlock, c.NormNumGroups, c.CrossAttentionDim, c.SampleSize),
            Is.EqualTo((new[] { 32, 64 }, 1, 8, 32, (int?)16)));
        Assert.That(c.HeadsPerBlock, Is.EqualTo(new[] { 2, 2 }));
        // Absent from the file: diffusers' defaults.
        Assert.That(c.MidBlockType, Is.EqualTo("UNetMidBlock2DCrossAttn"));
        Assert.That((c.UpcastAttention, c.ClassEmbedType, c.TransformerLayersPerBlock, c.TimeEmbeddingType), Is.EqualTo((false, (string?)null, 1, "positional")));
        Assert.That(c.OnlyCrossAttention, Is.EqualTo(new[] { false, false }));
    }

    [Test]
    public void Sd2StyleUNetWithHeadListsAndLinearProjection()
    {
        // The shape of SD 2.x's unet/config.json: attention_head_dim per block, linear projections, 1024-wide context.
        var c = UNet2DConditionConfig.Load(Write("""
            {"_class_name": "UNet2DConditionModel", "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
             "use_linear_projection": true, "upcast_attention": true, "sample_size": 96, "num_class_embeds": null}
            """));
        Assert.That(c.HeadsPerBlock, Is.EqualTo(new[] { 5, 10, 20, 20 }));
        Assert.That((c.CrossAttentionDim, c.UseLinearProjection, c.UpcastAttention, c.SampleSize), Is.EqualTo((1024, true, true, (int?)96)));
        Assert.That(c.BlockOutChannels, Is.EqualTo(new[] { 320, 640, 1280, 1280 }));
    }

    [Test]
    public void NumAttentionHeadsWinsOverAttentionHeadDim()
    {
        var c = UNet2DConditionConfig.Load(Write("""{"attention_head_dim": 8, "num_attention_heads": [2, 4, 8, 8]}"""));
        Assert.That(c.HeadsPerBlock, Is.EqualTo(new[] { 2, 4, 8, 8 }));
    }

    [Test]
    public void Sd15AndTinyTextEncoders()
    {
        var c = ClipTextConfig.Load(ModelData.Path("sd15", "text_encoder", "config.json"));
        Assert.That((c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings),
            Is.EqualTo((49408, 768, 3072, 12, 12, 77)));
        Assert.That((c.HiddenAct, c.LayerNormEps, c.HeadDim, c.EosTokenId), Is.EqualTo(("quick_gelu", 1e-5, 64, 2)));
        Assert.That(c.ProjectionDim, Is.EqualTo(512), "absent from the file: transformers' default");

        var tiny = ClipTextConfig.Load(ModelData.Path("tiny-sd", "text_encoder", "config.json"));
        Assert.That((tiny.HiddenSize, tiny.IntermediateSize, tiny.NumHiddenLayers, tiny.NumAttentionHeads, tiny.EosTokenId, tiny.PadTokenId),
            Is.EqualTo((32, 64, 2, 4, 49407, 49407)));
    }

    [Test]
    public void Sd15AndTinyVaes()
    {
        var c = AutoencoderKLConfig.Load(ModelData.Path("sd15", "vae", "config.json"));
        Assert.That((c.BlockOutChannels, c.LatentChannels, c.LayersPerBlock, c.SampleSize, c.ScalingFactor),
            Is.EqualTo((new[] { 128, 256, 512, 512 }, 4, 2, 512, 0.18215)));
        Assert.That(c.NormNumGroups, Is.EqualTo(32), "absent from the file: diffusers' default");
        Assert.That(c.DownBlockTypes, Is.All.EqualTo("DownEncoderBlock2D"));

        var tiny = AutoencoderKLConfig.Load(ModelData.Path("tiny-sd", "vae", "config.json"));
        Assert.That((tiny.BlockOutChannels, tiny.NormNumGroups, tiny.LayersPerBlock, tiny.SampleSize), Is.EqualTo((new[] { 16, 32 }, 8, 1, 32)));
        Assert.That(AutoencoderKLConfig.Load(Write("{}")).ScalingFactor, Is.EqualTo(0.18215), "default scaling factor");
    }

    [Test]
    public void Schedulers()
    {
        var pndm = SchedulerConfig.Load(ModelData.Path("sd15", "scheduler", "scheduler_config.json"));
        Assert.That((pndm.ClassName, pndm.NumTrainTimesteps, pndm.BetaStart, pndm.BetaEnd, pndm.BetaSchedule),
            Is.EqualTo(("PNDMScheduler", 1000, 0.00085, 0.012, "scaled_linear")));
        Assert.That((pndm.StepsOffset, pndm.ClipSample, pndm.SetAlphaToOne, pndm.TrainedBetas), Is.EqualTo((1, false, false, (double[]?)null)));
        Assert.That((pndm.PredictionType, pndm.TimestepSpacing), Is.EqualTo(("epsilon", (string?)null)), "absent: default, and null for the sampler to fill");

        var ddpm = SchedulerConfig.Load(ModelData.Path("tiny-sd", "scheduler", "scheduler_config.json"));
        Assert.That((ddpm.ClassName, ddpm.PredictionType, ddpm.ClipSample, ddpm.SetAlphaToOne), Is.EqualTo(("DDPMScheduler", "epsilon", false, false)));

        var defaults = SchedulerConfig.Load(Write("""{"_class_name": "DDIMScheduler"}"""));
        Assert.That((defaults.BetaStart, defaults.BetaEnd, defaults.BetaSchedule, defaults.ClipSample, defaults.SetAlphaToOne, defaults.StepsOffset),
            Is.EqualTo((0.0001, 0.02, "linear", true, (bool?)null, 0)));
        Assert.That(SchedulerConfig.Load(Write("""{"timestep_spacing": "trailing"}""")).TimestepSpacing, Is.EqualTo("trailing"));

        var v = SchedulerConfig.Load(Write("""{"prediction_type": "v_prediction", "num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3]}"""));
        Assert.That((v.PredictionType, v.TrainedBetas), Is.EqualTo(("v_prediction", new[] { 0.1, 0.2, 0.3 })));
    }

    [Test]
    public void ModelIndexes()
    {
        var sd = ModelIndex.Load(ModelData.Path("sd15", "model_index.json"));
        Assert.That((sd.ClassName, sd.DiffusersVersion), Is.EqualTo(("StableDiffusionPipeline", "0.2.2")));
        Assert.That(sd.Components.Select(c => c.Name),
            Is.EquivalentTo(new[] { "feature_extractor", "safety_checker", "scheduler", "text_encoder", "tokenizer", "unet", "vae" }));
        Assert.That(sd.Component("unet"), Is.EqualTo(new PipelineComponent("unet", "diffusers", "UNet2DConditionModel")));
        Assert.That(sd.Component("tokenizer"), Is.EqualTo(new PipelineComponent("tokenizer", "transformers", "CLIPTokenizer")));

        var tiny = ModelIndex.Load(ModelData.Path("tiny-sd", "model_index.json"));
        Assert.That(tiny.Component("scheduler"), Is.EqualTo(new PipelineComponent("scheduler", "diffusers", "DDPMScheduler")));
        Assert.That(tiny.Component("safety_checker"), Is.Null);

        var left = ModelIndex.Load(Write("""{"_class_name": "StableDiffusionPipeline", "safety_checker": [null, null], "requires_safety_checker": false}"""));
        Assert.That(left.Component("safety_checker"), Is.EqualTo(new PipelineComponent("safety_checker", null, null)));
        Assert.That(left.Arguments["requires_safety_checker"], Is.EqualTo("false"));
    }

    // ---- Save writes what Load reads, with diffusers' key names ----

    static IEnumerable<TestCaseData> RealConfigs()
    {
        foreach (string model in new[] { "sd15", "tiny-sd" })
        {
            yield return new TestCaseData(model, "unet/config.json");
            yield return new TestCaseData(model, "text_encoder/config.json");
            yield return new TestCaseData(model, "vae/config.json");
            yield return new TestCaseData(model, "scheduler/scheduler_config.json");
            yield return new TestCaseData(model, "model_index.json");
        }
    }

    static string LoadAndSave(string source, string target) => source switch
    {
        _ when source.EndsWith("unet/config.json") => Save(UNet2DConditionConfig.Load(source).Save, target, () => UNet2DConditionConfig.Load(target).ToJson()),
        _ when source.EndsWith("text_encoder/config.json") => Save(ClipTextConfig.Load(source).Save, target, () => ClipTextConfig.Load(target).ToJson()),
        _ when source.EndsWith("vae/config.json") => Save(AutoencoderKLConfig.Load(source).Save, target, () => AutoencoderKLConfig.Load(target).ToJson()),
        _ when source.EndsWith("scheduler_config.json") => Save(SchedulerConfig.Load(source).Save, target, () => SchedulerConfig.Load(target).ToJson()),
        _ => Save(ModelIndex.Load(source).Save, target, () => ModelIndex.Load(target).ToJson()),
    };

    static string Save(Action<string> save, string target, Func<string> reload)
    {
        save(target);
        return reload();
    }

    [TestCaseSource(nameof(RealConfigs))]
    public void SavedConfigsReloadIdenticallyAndKeepEveryKeyWithItsValue(string model, string file)
    {
        string source = ModelData.Path([model, .. file.Split('/')]);
        string target = Path.Combine(dir, "saved.json");
        string reloaded = LoadAndSave(source, target);
        Assert.That(File.ReadAllText(target), Is.EqualTo(reloaded), "load(save(c)) saves the same text");
        Assert.That(Directory.GetFiles(dir), Is.EqualTo(new[] { target }), "no temp file left behind");

        // Every key of the original that we model is written back with the same value (attention_head_dim and
        // only_cross_attention may widen from one value to a per-block list, which diffusers reads alike).
        using var original = JsonDocument.Parse(File.ReadAllText(source));
        using var saved = JsonDocument.Parse(File.ReadAllText(target));
        foreach (var p in original.RootElement.EnumerateObject())
        {
            if (!saved.RootElement.TryGetProperty(p.Name, out var s)) continue;
            if (p.Value.ValueKind != JsonValueKind.Array && s.ValueKind == JsonValueKind.Array)
                Assert.That(s.EnumerateArray().Select(e => e.GetRawText()), Is.All.EqualTo(p.Value.GetRawText()), p.Name);
            else if (p.Value.ValueKind == JsonValueKind.Number)
                Assert.That(s.GetDouble(), Is.EqualTo(p.Value.GetDouble()), p.Name);
            else
                Assert.That(JsonSerializer.Serialize(s), Is.EqualTo(JsonSerializer.Serialize(p.Value)), p.Name);
        }
    }

    [Test]
    public void SavedUNetConfigHasTheKeysDiffusersReads()
    {
        string path = Path.Combine(dir, "config.json");
        UNet2DConditionConfig.Load(ModelData.Path("sd15", "unet", "config.json")).Save(path);
        using var saved = JsonDocument.Parse(File.ReadAllText(path));
        var keys = saved.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.That(keys, Is.SupersetOf(new[]
        {
            "_class_name", "act_fn", "attention_head_dim", "block_out_channels", "cross_attention_dim", "down_block_types", "flip_sin_to_cos",
            "freq_shift", "in_channels", "layers_per_block", "mid_block_type", "norm_eps", "norm_num_groups", "out_channels", "sample_size",
            "up_block_types", "use_linear_projection", "upcast_attention", "only_cross_attention", "class_embed_type", "num_class_embeds",
        }));
        Assert.That(keys, Is.Unique);
    }

    // ---- errors name the file and the key ----

    [Test]
    public void AMissingFileIsNamed() =>
        Assert.That(() => UNet2DConditionConfig.Load(Path.Combine(dir, "absent.json")), Throws.TypeOf<FileNotFoundException>().With.Message.Contains("absent.json"));

    [TestCase("{\"in_channels\": 4,")]
    [TestCase("[4]")]
    public void BadJsonIsNamed(string json)
    {
        string path = Write(json);
        Assert.That(() => ClipTextConfig.Load(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(path));
    }

    [TestCase("""{"in_channels": "4"}""", "in_channels", "an integer")]
    [TestCase("""{"in_channels": 4.5}""", "in_channels", "an integer")]
    [TestCase("""{"block_out_channels": 320}""", "block_out_channels", "a list of integers")]
    [TestCase("""{"use_linear_projection": "yes"}""", "use_linear_projection", "true or false")]
    [TestCase("""{"norm_eps": null}""", "norm_eps", "a number")]
    [TestCase("""{"attention_head_dim": [8, 8]}""", "attention_head_dim", "2 values for 4 blocks")]
    [TestCase("""{"down_block_types": ["CrossAttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]}""", "down_block_types", "AttnDownBlock2D")]
    [TestCase("""{"up_block_types": ["UpBlock2D", "SkipUpBlock2D", "UpBlock2D", "UpBlock2D"]}""", "up_block_types", "SkipUpBlock2D")]
    [TestCase("""{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}""", "mid_block_type", "not supported")]
    [TestCase("""{"block_out_channels": [320, 640]}""", "block_out_channels", "2 blocks")]
    [TestCase("""{"block_out_channels": [320, 640, 1280, 1000]}""", "block_out_channels", "norm_num_groups")]
    [TestCase("""{"_class_name": "AutoencoderKL"}""", "_class_name", "not a UNet2DConditionModel config")]
    [TestCase("""{"class_embed_type": "projection"}""", "class_embed_type", "not supported")]
    [TestCase("""{"norm_num_groups": 0}""", "norm_num_groups", "not a positive integer")]
    [TestCase("""{"layers_per_block": -1}""", "layers_per_block", "not a positive integer")]
    [TestCase("""{"attention_head_dim": [8, 0, 8, 8]}""", "attention_head_dim", "not a positive integer")]
    [TestCase("""{"block_out_channels": [320, 640, 1280, -1280]}""", "block_out_channels", "not a positive integer")]
    public void BadUNetFieldsAreNamed(string json, string key, string problem)
    {
        string path = Write(json);
        Assert.That(() => UNet2DConditionConfig.Load(path),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains(path).And.Message.Contains($"\"{key}\"").And.Message.Contains(problem));
    }

    [Test]
    public void BadFieldsOfTheOtherConfigsAreNamed()
    {
        void Rejected(Func<string, object> load, string json, string key)
        {
            string path = Write(json);
            Assert.That(() => load(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(path).And.Message.Contains($"\"{key}\""), json);
        }
        Rejected(ClipTextConfig.Load, """{"hidden_act": "relu"}""", "hidden_act");
        Rejected(ClipTextConfig.Load, """{"hidden_size": 768, "num_attention_heads": 7}""", "num_attention_heads");
        Rejected(ClipTextConfig.Load, """{"model_type": "clip_vision_model"}""", "model_type");
        Rejected(ClipTextConfig.Load, """{"num_attention_heads": 0}""", "num_attention_heads");
        Rejected(ClipTextConfig.Load, """{"max_position_embeddings": -77}""", "max_position_embeddings");
        Rejected(AutoencoderKLConfig.Load, """{"norm_num_groups": 0}""", "norm_num_groups");
        Rejected(AutoencoderKLConfig.Load, """{"latent_channels": 0}""", "latent_channels");
        Rejected(AutoencoderKLConfig.Load, """{"down_block_types": ["DownBlock2D"]}""", "down_block_types");
        Rejected(AutoencoderKLConfig.Load, """{"scaling_factor": "0.18"}""", "scaling_factor");
        Rejected(SchedulerConfig.Load, """{"beta_schedule": "cosine"}""", "beta_schedule");
        Rejected(SchedulerConfig.Load, """{"prediction_type": "noise"}""", "prediction_type");
        Rejected(SchedulerConfig.Load, """{"num_train_timesteps": 2, "trained_betas": [0.1]}""", "trained_betas");
        Rejected(ModelIndex.Load, """{"unet": ["diffusers", "UNet2DConditionModel"]}""", "_class_name");
        Rejected(ModelIndex.Load, """{"_class_name": "P", "unet": ["diffusers"]}""", "unet");
    }
}
