// The 8-bit dynamic map of block-wise optimizer state: its values, and the cpu tier's lookup against the binary search.
using DreamBooth.Kernels;
using NUnit.Framework;

namespace DreamBooth.Tests.Kernels;

public class DynamicMapTests
{
    [Test]
    public void MapsHoldTheDynamicDataType()
    {
        foreach (var (name, map) in new[] { ("signed", DynamicMap.Signed), ("unsigned", DynamicMap.Unsigned) })
        {
            Assert.That(map, Has.Length.EqualTo(256), name);
            for (int i = 1; i < map.Length; i++) Assert.That(map[i], Is.GreaterThan(map[i - 1]), $"{name}: ascending at {i}");
            Assert.That(map[^1], Is.EqualTo(1f), $"{name}: ends at 1");
        }
        // Signed: decade d holds 2^d values of each sign, the midpoints of 2^d steps over [0.1, 1) times 10^(d−6).
        Assert.That(DynamicMap.Signed[127], Is.EqualTo(0f), "signed zero");
        Assert.That(DynamicMap.Signed[128], Is.EqualTo(0.55e-6f), "smallest positive: decade 0's one value");
        Assert.That(DynamicMap.Signed[126], Is.EqualTo(-0.55e-6f));
        Assert.That(DynamicMap.Signed[0], Is.EqualTo(-(0.1 + 63.5 * 0.9 / 64)).Within(1e-7), "most negative: decade 6's last value");
        Assert.That(DynamicMap.Signed.Count(x => x >= 0.1f && x < 1f), Is.EqualTo(64), "decade 6 positives");
        // Unsigned: twice as many per decade, 0 first.
        Assert.That(DynamicMap.Unsigned[0], Is.EqualTo(0f));
        Assert.That(DynamicMap.Unsigned[1], Is.EqualTo(0.325e-6f), "decade 0: 0.1 + 0.45/2, times 1e-6");
        Assert.That(DynamicMap.Unsigned[2], Is.EqualTo(0.775e-6f));
        Assert.That(DynamicMap.Unsigned.Count(x => x >= 0.1f && x < 1f), Is.EqualTo(128), "decade 6");
    }

    [Test]
    public void QuantizeRoundsToTheNearestEntryAndTiesDown()
    {
        var map = DynamicMap.Signed;
        for (int i = 0; i < 255; i++)
        {
            double mid = DynamicMap.SignedMidpoints[i];
            Assert.That(DynamicMap.Quantize(DynamicMap.SignedMidpoints, map[i]), Is.EqualTo(i), $"entry {i}");
            Assert.That(DynamicMap.Quantize(DynamicMap.SignedMidpoints, mid), Is.EqualTo(i), $"the midpoint above {i} ties down");
            Assert.That(DynamicMap.Quantize(DynamicMap.SignedMidpoints, Math.BitIncrement(mid)), Is.EqualTo(i + 1), $"just above midpoint {i}");
        }
        Assert.That(DynamicMap.Quantize(DynamicMap.SignedMidpoints, -5), Is.EqualTo(0), "below the map: its first entry");
        Assert.That(DynamicMap.Quantize(DynamicMap.UnsignedMidpoints, 5), Is.EqualTo(255), "above the map: its last entry");
    }

    [Test]
    public void CodeTableAgreesWithTheBinarySearch()
    {
        var values = new List<float>();
        for (uint key = 0; key < 1 << 16; key++)   // both ends of every bucket of the table
            values.AddRange([BitConverter.UInt32BitsToSingle(key << 16), BitConverter.UInt32BitsToSingle(key << 16 | 0xFFFF)]);
        foreach (float mid in DynamicMap.SignedMidpoints.Concat(DynamicMap.UnsignedMidpoints))
            for (int ulps = -2; ulps <= 2; ulps++)
                values.Add(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(mid) + ulps));
        var random = new Random(7);
        for (int i = 0; i < 100_000; i++) values.Add((float)(random.NextDouble() * 2 - 1));
        foreach (var (name, table, midpoints) in new[] { ("signed", DynamicMap.CodeTable.Signed, DynamicMap.SignedMidpoints),
                     ("unsigned", DynamicMap.CodeTable.Unsigned, DynamicMap.UnsignedMidpoints) })
            foreach (float x in values.Where(x => !float.IsNaN(x)))
                if (table.Code(x) != DynamicMap.Quantize(midpoints, x))
                    Assert.Fail($"{name}: code of {x:R} is {table.Code(x)}, the search gives {DynamicMap.Quantize(midpoints, x)}");
    }
}
