// UNet forward against the libtorch peer (shared/peer): same safetensors weights and inputs, fp32 outputs compared.
using System.Diagnostics;
using System.Runtime.InteropServices;
using DreamBooth.Autograd;
using DreamBooth.Kernels;
using DreamBooth.Models.Configs;
using DreamBooth.Models.Formats;
using DreamBooth.Models.Unet;
using DreamBooth.Tests.Support;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

/// <summary>
/// The peer (TorchSharp + libtorch, a diffusers-compatible UNet2DConditionModel) writes random weights and inputs,
/// runs its forward, and we load the same files and run ours. Needs the peer built (see shared/peer/README.md):
/// DREAMBOOTH_PEER names its PeerBench.dll, else /tmp/peer/bin/Release/net10.0/PeerBench.dll is tried; without it
/// the tests are ignored.
/// </summary>
[Category("Parity")]
public class UNetParityTests
{
    const string DefaultPeer = "/tmp/peer/bin/Release/net10.0/PeerBench.dll";

    // Both sides compute in f32 with different summation orders (libtorch's blocked GEMM/conv vs ours) through ~40
    // layers: the measured worst difference is ~1e-6 of the output's scale; 1e-4 leaves room across machines.
    const double RelativeTolerance = 1e-4;

    static string PeerDll => Environment.GetEnvironmentVariable("DREAMBOOTH_PEER") is { Length: > 0 } p ? p : DefaultPeer;

    string _dir = null!;

    [SetUp] public void Create() => _dir = ModelData.TempFolder();
    [TearDown] public void Delete() => Directory.Delete(_dir, true);

    [TestCase("tiny-sd/unet", "cpu")]
    [TestCase("tiny-sd/unet", "reference")]
    [TestCase("unet-parity-sd2", "cpu")]
    public void ForwardMatchesThePeer(string configFolder, string backendName) => Compare(configFolder, backendName);

    /// <summary>The real SD 1.5 UNet (859M parameters, 3.4 GB of f32 weights written and read) on a 16×16 sample.</summary>
    [Test, Category("Slow")]
    public void FullSizeSd15MatchesThePeer() => Compare("unet-parity-sd15-s16", "cpu");

    void Compare(string configFolder, string backendName)
    {
        if (!File.Exists(PeerDll))
            Assert.Ignore($"the libtorch peer is not built: no {PeerDll} (build shared/peer as its README says, or set DREAMBOOTH_PEER)");
        string config = ModelData.Path([.. configFolder.Split('/'), "config.json"]);
        string model = Path.Combine(_dir, "model"), inputs = Path.Combine(_dir, "inputs.safetensors"), output = Path.Combine(_dir, "out.safetensors");
        RunPeer("unet-init", "--config", config, "--out", model, "--seed", "3");
        RunPeer("make-inputs", "--config", config, "--out", inputs, "--batch", "2", "--seed", "4");
        RunPeer("unet-forward", "--model", model, "--inputs", inputs, "--out", output, "--threads", "1");

        using var backend = Backends.Create(backendName);
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(model, "unet", "config.json")));
        using var store = new ParameterStore(backend, unet);
        StateDict.Load(store, Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors"));

        float[] ours;
        using (var file = SafetensorsFile.Open(inputs))
        using (var scope = new TensorScope())
        using (Tape.NoGrad())
        {
            Tensor Floats(string name) => Tensor.FromArray(backend, file.ReadFloats(name), Array.ConvertAll(file[name].Shape, d => (int)d));
            var timestep = file["timestep"];
            Assert.That(timestep.DType, Is.EqualTo(SafetensorsDType.I64));
            var bytes = new byte[timestep.ByteCount];
            file.ReadBytes("timestep", bytes);
            float[] timesteps = Array.ConvertAll(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), t => (float)t);
            ours = unet.Forward(Floats("sample"), timesteps, Floats("encoder_hidden_states")).ToArray();
        }
        float[] peer;
        using (var file = SafetensorsFile.Open(output)) peer = file.ReadFloats("out");

        double scale = peer.Max(v => Math.Abs(v)), worst = 0;
        for (int i = 0; i < peer.Length; i++) worst = Math.Max(worst, Math.Abs(ours[i] - peer[i]));
        TestContext.Out.WriteLine($"{configFolder} on {backendName}: max |ours - peer| / max |peer| = {worst / scale:E2} (max |peer| {scale:G4})");
        Close.Assert(ours, peer, RelativeTolerance * scale, RelativeTolerance, $"{configFolder} unet vs the libtorch peer");
    }

    static void RunPeer(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(PeerDll);
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"peer {args[0]} did not finish within 2 minutes");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"peer {string.Join(' ', args)} exited with {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
    }
}
