// The libtorch peer (shared/peer, built by .ci/build-peer): where its dll is, and running one of its commands.
using System.Diagnostics;
using NUnit.Framework;

namespace DreamBooth.Tests.Support;

/// <summary>
/// The peer (TorchSharp + libtorch: a diffusers-compatible UNet and AutoencoderKL, a transformers-compatible
/// CLIPTextModel) is an implementation written independently from the upstream sources. DREAMBOOTH_PEER names its
/// PeerBench.dll, else /tmp/peer/bin/Release/net10.0/PeerBench.dll is tried; without it the Parity tests are ignored.
/// </summary>
static class Peer
{
    const string DefaultDll = "/tmp/peer/bin/Release/net10.0/PeerBench.dll";

    static string Dll => Environment.GetEnvironmentVariable("DREAMBOOTH_PEER") is { Length: > 0 } p ? p : DefaultDll;

    /// <summary>Ignores the calling test when the peer is not built.</summary>
    public static void Require()
    {
        if (!File.Exists(Dll))
            Assert.Ignore($"the libtorch peer is not built: no {Dll} (build shared/peer as its README says, or set DREAMBOOTH_PEER)");
    }

    /// <summary>Runs one peer command (2 minutes at most); fails the test with its output when it fails. Returns stdout.</summary>
    public static string Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Dll);
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
        return stdout.Result;
    }

    /// <summary>max |ours − peer| / max |peer|, printed, and asserted below the relative tolerance.</summary>
    public static void Compare(float[] ours, float[] peer, double relativeTolerance, string what)
    {
        Assert.That(ours, Has.Length.EqualTo(peer.Length), what);
        double scale = peer.Max(v => Math.Abs(v)), worst = 0;
        for (int i = 0; i < peer.Length; i++) worst = Math.Max(worst, Math.Abs(ours[i] - peer[i]));
        TestContext.Out.WriteLine($"{what}: max |ours - peer| / max |peer| = {worst / scale:E2} (max |peer| {scale:G4})");
        Close.Assert(ours, peer, relativeTolerance * scale, relativeTolerance, $"{what} vs the libtorch peer");
    }
}
