// Every test run fills uninitialized host buffers with NaN, so an op that leaves part of its output unwritten fails.
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests;

[SetUpFixture]
public class PoisonSetup
{
    [OneTimeSetUp]
    public void PoisonUninitializedBuffers() => HostBackend.PoisonUninitialized = true;
}
