// The 8-bit dynamic data type of block-wise quantised optimizer state, its blocks, and the rounding rule every tier shares.
using System.Runtime.CompilerServices;

namespace DreamBooth.Kernels;

/// <summary>
/// 8-bit optimizers (Dettmers et al., "8-bit Optimizers via Block-wise Quantization", 2022; bitsandbytes' AdamW8bit)
/// store each moment as one byte per parameter: a code into a 256-entry map of values in [−1, 1], times the absolute
/// maximum of its block of <see cref="BlockSize"/> parameters (one f32 per block). The map is the "dynamic" data type:
/// decade d = 0..6 covers magnitudes 10^(d−6)·[0.1, 1) with 2^d (signed map, both signs) or 2^(d+1) (unsigned map)
/// evenly spaced values, the midpoints of that many equal steps from 0.1 to 1; 0 and 1 complete the 256. So small
/// moments keep relative precision (Adam's second moment spans many decades) where a linear 8-bit grid would flush
/// them to zero. Values are computed in double and rounded to f32, which matches bitsandbytes' table to f32 rounding.
///
/// Rounding: code(x) = the number of <see cref="SignedMidpoints"/> (or unsigned) strictly below x, i.e. the nearest
/// map entry, the lower one on a tie. The midpoints are f32 constants of the format, so every tier rounds alike.
/// </summary>
public static class DynamicMap
{
    /// <summary>Parameters per block: one absmax each (bitsandbytes' block size for 8-bit optimizer state).</summary>
    public const int BlockSize = 256;

    /// <summary>Tensors smaller than this keep f32 moments (bitsandbytes' min_8bit_size): their state is tiny, and
    /// biases and norm scales are where 8-bit rounding would cost most.</summary>
    public const int MinQuantizedLength = 4096;

    /// <summary>The first moment's map: (256) ascending, from −0.993 to 1, with 0 (code 127).</summary>
    public static readonly float[] Signed = Build(signed: true);
    /// <summary>The second moment's map: (256) ascending, from 0 to 1.</summary>
    public static readonly float[] Unsigned = Build(signed: false);
    /// <summary>(255) f32 midpoints of consecutive <see cref="Signed"/> entries.</summary>
    public static readonly float[] SignedMidpoints = Midpoints(Signed);
    /// <summary>(255) f32 midpoints of consecutive <see cref="Unsigned"/> entries.</summary>
    public static readonly float[] UnsignedMidpoints = Midpoints(Unsigned);

    /// <summary>Blocks (absmax values) of n parameters: ⌈n / BlockSize⌉.</summary>
    public static long Blocks(long n) => (n + BlockSize - 1) / BlockSize;

    /// <summary>The code of x: how many midpoints lie strictly below it (a binary search).</summary>
    public static byte Quantize(ReadOnlySpan<float> midpoints, double x) // midpoints (255)
    {
        int lo = 0, hi = midpoints.Length;   // the count lies in [lo, hi]
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (midpoints[mid] < x) lo = mid + 1;
            else hi = mid;
        }
        return (byte)lo;
    }

    /// <summary>
    /// Quantize without a search, for the cpu tier. The top 16 bits of an f32 (sign, exponent, 7 mantissa bits) name a bucket
    /// of values at most 2^−7 = 0.8 % apart in relative terms; the map's midpoints are at least 0.7 % apart (the unsigned
    /// map's top decade), so a bucket holds at most two. Start[bucket] is the code of the bucket's smallest value, and
    /// code(x) = Start + [mid(Start) &lt; x] + [mid(Start + 1) &lt; x]. The constructor checks the two-midpoint bound for
    /// every bucket.
    /// </summary>
    public sealed unsafe class CodeTable
    {
        public static readonly CodeTable Signed = new(SignedMidpoints), Unsigned = new(UnsignedMidpoints);

        public readonly byte[] Start = new byte[(1 << 16) + 3];   // (65536) by the top 16 bits of x, and 3 bytes so a 4-byte read at any key stays inside
        public readonly float[] Midpoints;                  // (257): the map's 255, then +∞ twice

        CodeTable(float[] midpoints)
        {
            Midpoints = [.. midpoints, float.PositiveInfinity, float.PositiveInfinity];
            for (uint key = 0; key < 1 << 16; key++)
            {
                float low = BitConverter.UInt32BitsToSingle(key << 16), high = BitConverter.UInt32BitsToSingle(key << 16 | 0xFFFF);
                (float smallest, float largest) = (key & 0x8000) == 0 ? (low, high) : (high, low);
                Start[key] = Quantize(midpoints, smallest);
                if (!float.IsNaN(largest) && Quantize(midpoints, largest) - Start[key] > 2)
                    throw new InvalidOperationException($"dynamic map: more than two midpoints between {smallest} and {largest}");
            }
        }

        /// <summary>Quantize(midpoints, x) for this table's map.</summary>
        public byte Code(float x)
        {
            fixed (byte* start = Start)
            fixed (float* midpoints = Midpoints)
                return Code(start, midpoints, x);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static byte Code(byte* start, float* midpoints, float x)
        {
            int t = start[BitConverter.SingleToUInt32Bits(x) >> 16];
            return (byte)(t + (midpoints[t] < x ? 1 : 0) + (midpoints[t + 1] < x ? 1 : 0));
        }
    }

    static float[] Build(bool signed)
    {
        var values = new List<double> { 0, 1 };
        for (int d = 0; d < 7; d++)
        {
            int steps = signed ? 1 << d : 2 << d;
            double scale = Math.Pow(10, d - 6), width = 0.9 / steps;
            for (int j = 0; j < steps; j++)
            {
                double mean = 0.1 + (j + 0.5) * width;
                values.Add(scale * mean);
                if (signed) values.Add(-scale * mean);
            }
        }
        if (values.Count != 256) throw new InvalidOperationException($"dynamic map: {values.Count} values, not 256");
        return values.Select(v => (float)v).Order().ToArray();
    }

    static float[] Midpoints(float[] map) => Enumerable.Range(0, map.Length - 1).Select(i => (float)((map[i] + (double)map[i + 1]) / 2)).ToArray();
}
