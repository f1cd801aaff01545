// Single-file (LDM) checkpoints: SD 1.5's key layout, a bit-exact round trip, and bad files refused with the keys listed by component.
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Pipeline;
using DreamBooth.Tests.Trainer;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

public class SingleFileTests
{
    static IReadOnlyList<(string Component, string Diffusers, string Single)> Sd15Mapping() => SingleFile.Mapping(
        UNet2DConditionConfig.Load(ModelData.Path("sd15", "unet", "config.json")), AutoencoderKLConfig.Load(ModelData.Path("sd15", "vae", "config.json")),
        ClipTextConfig.Load(ModelData.Path("sd15", "text_encoder", "config.json")));

    [Test]
    public void Sd15MapsEveryWeightOntoTheNamesSdAppsLoad()
    {
        var map = Sd15Mapping().ToDictionary(m => m.Diffusers + "@" + m.Component, m => m.Single);
        string U(string key) => map[key + "@unet"];
        string V(string key) => map[key + "@vae"];
        // Names of the SD 1.x single-file layout, one per rule.
        Assert.That(U("conv_in.weight"), Is.EqualTo("model.diffusion_model.input_blocks.0.0.weight"));
        Assert.That(U("time_embedding.linear_2.bias"), Is.EqualTo("model.diffusion_model.time_embed.2.bias"));
        Assert.That(U("down_blocks.0.resnets.1.conv1.weight"), Is.EqualTo("model.diffusion_model.input_blocks.2.0.in_layers.2.weight"));
        Assert.That(U("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
            Is.EqualTo("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"));
        Assert.That(U("down_blocks.0.downsamplers.0.conv.weight"), Is.EqualTo("model.diffusion_model.input_blocks.3.0.op.weight"));
        Assert.That(U("down_blocks.1.resnets.0.conv_shortcut.weight"), Is.EqualTo("model.diffusion_model.input_blocks.4.0.skip_connection.weight"));
        Assert.That(U("down_blocks.3.resnets.1.time_emb_proj.weight"), Is.EqualTo("model.diffusion_model.input_blocks.11.0.emb_layers.1.weight"));
        Assert.That(U("mid_block.resnets.1.norm2.weight"), Is.EqualTo("model.diffusion_model.middle_block.2.out_layers.0.weight"));
        Assert.That(U("mid_block.attentions.0.proj_out.weight"), Is.EqualTo("model.diffusion_model.middle_block.1.proj_out.weight"));
        Assert.That(U("up_blocks.0.resnets.2.conv2.weight"), Is.EqualTo("model.diffusion_model.output_blocks.2.0.out_layers.3.weight"));
        Assert.That(U("up_blocks.0.upsamplers.0.conv.weight"), Is.EqualTo("model.diffusion_model.output_blocks.2.1.conv.weight"));
        Assert.That(U("up_blocks.1.upsamplers.0.conv.weight"), Is.EqualTo("model.diffusion_model.output_blocks.5.2.conv.weight"));
        Assert.That(U("up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight"),
            Is.EqualTo("model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.2.weight"));
        Assert.That(U("conv_norm_out.weight"), Is.EqualTo("model.diffusion_model.out.0.weight"));
        Assert.That(U("conv_out.bias"), Is.EqualTo("model.diffusion_model.out.2.bias"));
        Assert.That(V("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"), Is.EqualTo("first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"));
        Assert.That(V("encoder.down_blocks.0.downsamplers.0.conv.bias"), Is.EqualTo("first_stage_model.encoder.down.0.downsample.conv.bias"));
        Assert.That(V("encoder.mid_block.attentions.0.to_q.weight"), Is.EqualTo("first_stage_model.encoder.mid.attn_1.q.weight"));
        Assert.That(V("decoder.mid_block.attentions.0.to_out.0.bias"), Is.EqualTo("first_stage_model.decoder.mid.attn_1.proj_out.bias"));
        Assert.That(V("decoder.mid_block.resnets.1.conv2.weight"), Is.EqualTo("first_stage_model.decoder.mid.block_2.conv2.weight"));
        Assert.That(V("decoder.up_blocks.0.resnets.2.norm1.weight"), Is.EqualTo("first_stage_model.decoder.up.3.block.2.norm1.weight"));
        Assert.That(V("decoder.up_blocks.2.upsamplers.0.conv.weight"), Is.EqualTo("first_stage_model.decoder.up.1.upsample.conv.weight"));
        Assert.That(V("decoder.conv_norm_out.bias"), Is.EqualTo("first_stage_model.decoder.norm_out.bias"));
        Assert.That(V("post_quant_conv.weight"), Is.EqualTo("first_stage_model.post_quant_conv.weight"));
        Assert.That(map["text_model.encoder.layers.11.mlp.fc2.weight@text_encoder"],
            Is.EqualTo("cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight"));
        // Every weight has one name of its own, and SD 1.5's tensor counts.
        var counts = Sd15Mapping().GroupBy(m => m.Component).ToDictionary(g => g.Key, g => g.Count());
        Assert.That(counts, Is.EqualTo(new Dictionary<string, int> { ["unet"] = 686, ["vae"] = 248, ["text_encoder"] = 196 }));
    }

    [Test]
    public void ADiffusersFolderRoundTripsThroughOneFileBitForBit()
    {
        string root = ModelData.TempFolder();
        try
        {
            string model = Path.Combine(root, "model"), single = Path.Combine(root, "model.safetensors"), back = Path.Combine(root, "back");
            Assert.That(TrainTests.Dreambooth("init-model", "--config", ModelData.Path("tiny-sd"), "--output", model, "--variant", "fp16", "--device", "cpu").Exit, Is.Zero);
            foreach (string c in new[] { "unet", "vae", "text_encoder" })   // the plain names, F16 inside: dtypes must be kept
                File.Move(StableDiffusionPipeline.WeightsPath(model, c, "fp16"), StableDiffusionPipeline.WeightsPath(model, c, null));
            var write = TrainTests.Dreambooth("convert", "--from", model, "--to", single);
            Assert.That(write.Exit, Is.Zero, write.Error);
            Directory.CreateDirectory(Path.Combine(model, "logs"));   // as a trained output folder has: not part of the pipeline
            File.WriteAllText(Path.Combine(model, "logs", "train.jsonl"), "{}\n");
            var read = TrainTests.Dreambooth("convert", "--from", single, "--to", back, "--config", model);
            Assert.That(read.Exit, Is.Zero, read.Error);
            Assert.That(Directory.Exists(Path.Combine(back, "logs")), Is.False, "only the pipeline's configs are copied");

            using (var file = SafetensorsFile.Open(single))
            {
                Assert.That(file.Tensors.All(t => t.Name.StartsWith(SingleFile.UNetPrefix) || t.Name.StartsWith(SingleFile.VaePrefix)
                                                  || t.Name.StartsWith(SingleFile.TextEncoderPrefix)));
                Assert.That(file.Tensors.Single(t => t.Name == "first_stage_model.encoder.mid.attn_1.q.weight").Shape, Has.Length.EqualTo(4), "1×1 conv in LDM");
                Assert.That(file.Tensors.All(t => t.DType == SafetensorsDType.F16));
            }
            Assert.That(Inspector.Inspect(single).Lines, Has.Some.EqualTo("  single-file (LDM) layout: unet 208 tensors, 985,444 parameters"));
            foreach (string c in new[] { "unet", "vae", "text_encoder" })
            {
                using var before = SafetensorsFile.Open(StableDiffusionPipeline.WeightsPath(model, c, null));
                using var after = SafetensorsFile.Open(StableDiffusionPipeline.WeightsPath(back, c, null));
                Assert.That(after.Tensors.Select(t => t.Name).Order(), Is.EqualTo(before.Tensors.Select(t => t.Name).Order()), c);
                foreach (var t in before.Tensors)
                {
                    var other = after.Tensors.Single(u => u.Name == t.Name);
                    Assert.That((other.DType, other.Shape), Is.EqualTo((t.DType, t.Shape)), t.Name);
                    byte[] a = new byte[t.ByteCount], b = new byte[t.ByteCount];
                    before.ReadBytes(t.Name, a);
                    after.ReadBytes(t.Name, b);
                    Assert.That(b, Is.EqualTo(a), t.Name);
                }
            }
            using var backend = Backends.Create("cpu");
            using var loaded = StableDiffusionPipeline.Load(back, backend);   // the folder is a whole pipeline again
            Assert.That(File.Exists(Path.Combine(back, "tokenizer", "vocab.json")));

            var again = TrainTests.Dreambooth("convert", "--from", model, "--to", single);
            Assert.That((again.Exit, again.Error), Is.EqualTo((1, $"dreambooth convert: {single} already exists; choose another file\n")));
        }
        finally { Directory.Delete(root, true); }
    }

    /// <summary>The real size: SD 1.5's layout with random F16 weights (2.1 GB a copy), to one file and back through the
    /// configs shipped for single files (configs/sd15), every tensor bit-identical and the parameter counts SD 1.5's.</summary>
    [Test, Category("Slow")]
    public void Sd15SizedWeightsRoundTripBitForBitThroughTheShippedConfigs()
    {
        string root = ModelData.TempFolder();
        try
        {
            string model = Path.Combine(root, "sd15"), single = Path.Combine(root, "sd15.safetensors");
            var init = TrainTests.Dreambooth("init-model", "--config", ModelData.Path("sd15"), "--output", model, "--variant", "fp16", "--device", "cpu");
            Assert.That(init.Exit, Is.Zero, init.Error);
            foreach (string c in new[] { "unet", "vae", "text_encoder" })
                File.Move(StableDiffusionPipeline.WeightsPath(model, c, "fp16"), StableDiffusionPipeline.WeightsPath(model, c, null));
            var write = TrainTests.Dreambooth("convert", "--from", model, "--to", single);
            Assert.That(write.Exit, Is.Zero, write.Error);
            using var back = DreamBooth.Trainer.ModelSource.Open(single, "--model");
            var expected = new Dictionary<string, (int Tensors, long Parameters)>
            {
                ["unet"] = (686, 859_520_964), ["text_encoder"] = (196, 123_060_480), ["vae"] = (248, 83_653_863),
            };
            foreach (var (c, (tensors, parameters)) in expected)
            {
                using var before = SafetensorsFile.Open(StableDiffusionPipeline.WeightsPath(model, c, null));
                using var after = SafetensorsFile.Open(StableDiffusionPipeline.WeightsPath(back.Folder, c, null));
                Assert.That((after.Tensors.Count, after.Tensors.Sum(t => t.ElementCount)), Is.EqualTo((tensors, parameters)), c);
                var byName = after.Tensors.ToDictionary(t => t.Name);
                byte[] a = [], b = [];
                foreach (var t in before.Tensors)
                {
                    var other = byName[t.Name];
                    Assert.That((other.DType, other.Shape), Is.EqualTo((t.DType, t.Shape)), t.Name);
                    if (a.Length < t.ByteCount) (a, b) = (new byte[t.ByteCount], new byte[t.ByteCount]);
                    before.ReadBytes(t.Name, a.AsSpan(0, (int)t.ByteCount));
                    after.ReadBytes(t.Name, b.AsSpan(0, (int)t.ByteCount));
                    Assert.That(a.AsSpan(0, (int)t.ByteCount).SequenceEqual(b.AsSpan(0, (int)t.ByteCount)), t.Name);
                }
            }
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void AFileWithMissingOrExtraWeightsIsRefusedWithThemListedByComponent()
    {
        string root = ModelData.TempFolder();
        try
        {
            string model = Path.Combine(root, "model"), single = Path.Combine(root, "model.safetensors"), bad = Path.Combine(root, "bad.safetensors");
            Assert.That(TrainTests.Dreambooth("init-model", "--config", ModelData.Path("tiny-sd"), "--output", model, "--device", "cpu").Exit, Is.Zero);
            Assert.That(TrainTests.Dreambooth("convert", "--from", model, "--to", single).Exit, Is.Zero);
            using (var file = SafetensorsFile.Open(single))
            {
                var kept = file.Tensors.Where(t => t.Name != "model.diffusion_model.out.2.bias").Select(t =>
                {
                    var bytes = new byte[t.ByteCount];
                    file.ReadBytes(t.Name, bytes);
                    return SafetensorsEntry.FromBytes(t.Name, t.DType, t.Shape, bytes);
                }).Append(SafetensorsEntry.FromFloats("first_stage_model.encoder.extra.weight", [1], new float[1]))
                  .Append(SafetensorsEntry.FromFloats("alphas_cumprod", [2], new float[2]));   // LDM's schedule buffer: skipped
                SafetensorsWriter.Write(bad, kept);
            }
            string back = Path.Combine(root, "back");
            var run = TrainTests.Dreambooth("convert", "--from", bad, "--to", back, "--config", model);
            Assert.That(run.Exit, Is.EqualTo(1));
            Assert.That(run.Error, Does.StartWith($"dreambooth convert: {bad}: not a single-file checkpoint of {model}'s models; " +
                                                  "unet: 1 missing (model.diffusion_model.out.2.bias); vae: 1 unexpected (first_stage_model.encoder.extra.weight)"));
            Assert.That(Directory.Exists(back), Is.False, "nothing is written");
        }
        finally { Directory.Delete(root, true); }
    }
}
