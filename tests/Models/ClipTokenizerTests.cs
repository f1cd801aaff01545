// CLIP tokenizer: SD 1.5's ids for a wide set of prompts, framing and truncation, decoding, BPE rules on a toy vocabulary, load errors.
using DreamBooth.Models.Tokenizer;
using NUnit.Framework;

namespace DreamBooth.Tests.Models;

[TestFixture]
public class ClipTokenizerTests
{
    static readonly ClipTokenizer Sd15 = ClipTokenizer.Load(ModelData.Path("tiny-sd", "tokenizer"));   // SD 1.5's files, byte for byte
    const int Bos = 49406, Eos = 49407;

    [Test]
    public void APhotoOfSksDog()
    {
        int[] expected = [Bos, 320, 1125, 539, 48136, 1929, Eos, .. Enumerable.Repeat(Eos, 70)];
        Assert.That(Sd15.Encode("a photo of sks dog"), Is.EqualTo(expected));
        Assert.That((Sd15.BosId, Sd15.EosId, Sd15.PadId, Sd15.UnkId, Sd15.MaxLength), Is.EqualTo((Bos, Eos, Eos, Eos, 77)));
    }

    // Expected ids (between BOS and EOS, no padding) come from Hugging Face's `tokenizers` library (the Rust BPE, through
    // the @anush008/tokenizers 0.6.0 npm binding) set up as transformers' CLIP converter does (NFC, whitespace runs → " ",
    // lower-case, the CLIP split pattern, byte-level alphabet, "</w>" suffix) over this same vocab.json/merges.txt, not
    // from this code.
    [TestCase("A PHOTO OF SKS DOG", new[] { 320, 1125, 539, 48136, 1929 })]
    [TestCase("  a   photo\tof\n sks    dog  ", new[] { 320, 1125, 539, 48136, 1929 })]
    [TestCase("a photo, of sks-dog!", new[] { 320, 1125, 267, 539, 48136, 268, 1929, 256 })]
    [TestCase("1234", new[] { 272, 273, 274, 275 })]
    [TestCase("it's a dog's life, isn't it? we'll see; they'd say you're right",
        new[] { 585, 568, 320, 1929, 568, 970, 267, 2923, 713, 585, 286, 649, 1342, 862, 282, 889, 1896, 1451, 592, 982, 1155 })]
    [TestCase("café crème brûlée", new[] { 15304, 1075, 12138, 614, 711, 127, 119, 75, 13489 })]
    [TestCase("東京タワー", new[] { 48338, 21078, 105, 34941, 2429, 107, 30391 })]
    [TestCase("a 🐶 dog 🎉🎉", new[] { 320, 10631, 1929, 13450 })]
    [TestCase("salt & pepper", new[] { 6611, 261, 8253 })]
    [TestCase("oil painting by greg rutkowski, trending on artstation, 8k, highly detailed",
        new[] { 2870, 3086, 638, 7943, 14973, 17649, 267, 6087, 525, 1486, 2631, 267, 279, 330, 267, 5302, 12609 })]
    [TestCase("photorealistic portrait of an astronaut riding a horse on mars (masterpiece:1.2)",
        new[] { 1153, 16157, 5352, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 263, 12066, 281, 272, 269, 273, 264 })]
    [TestCase("naïve résumé — “quoted” text…", new[] { 1097, 35689, 563, 29106, 7054, 4166, 2005, 728, 506, 27706, 728, 507, 4160, 959 })]
    [TestCase("e=mc^2 $100 50% #hashtag @user", new[] { 324, 284, 4126, 317, 273, 259, 272, 271, 271, 276, 271, 260, 258, 9238, 287, 7031 })]
    [TestCase("supercalifragilisticexpialidocious", new[] { 1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466 })]
    [TestCase("Ünïcödé ÀÉÎÕÜ straße", new[] { 6522, 77, 35689, 66, 7255, 67, 4166, 36149, 3459, 48704, 127, 113, 47177, 1894, 127, 253, 324 })]
    [TestCase("<|startoftext|>hello<|endoftext|>", new[] { Bos, 3306, Eos })]
    [TestCase("x", new[] { 343 })]
    [TestCase("", new int[0])]
    // HTML entities are unescaped (twice, as CLIP's own cleaning does) before tokenizing: the same ids as "salt & pepper"
    // and "café" above.
    [TestCase("salt &amp; pepper", new[] { 6611, 261, 8253 })]
    [TestCase("salt &amp;amp; pepper", new[] { 6611, 261, 8253 })]
    [TestCase("caf&#233; cr&egrave;me br&ucirc;l&eacute;e", new[] { 15304, 1075, 12138, 614, 711, 127, 119, 75, 13489 })]
    public void MatchesTheReferenceTokenizer(string prompt, int[] tokens)
    {
        int[] encoded = Sd15.Encode(prompt);
        int[] expected = [Bos, .. tokens, Eos, .. Enumerable.Repeat(Eos, 75 - tokens.Length)];
        Assert.That(encoded, Is.EqualTo(expected));
    }

    [Test]
    public void AnOverlongPromptKeeps75TokensThenEos()
    {
        // "a photo of sks dog," is 6 tokens; 16 of them make 96, of which the first 75 fit between BOS and EOS.
        string prompt = string.Concat(Enumerable.Repeat("a photo of sks dog, ", 16));
        int[] phrase = [320, 1125, 539, 48136, 1929, 267];
        int[] expected = [Bos, .. Enumerable.Range(0, 75).Select(i => phrase[i % 6]), Eos];
        Assert.That(Sd15.Tokenize(prompt), Has.Count.EqualTo(96));
        Assert.That(Sd15.Encode(prompt), Is.EqualTo(expected));
    }

    [Test]
    public void ExactlyFullAndOneOverBothEndWithEos()
    {
        string full = string.Join(" ", Enumerable.Repeat("dog", 75)), over = full + " cat";
        Assert.That(Sd15.Encode(full), Is.EqualTo(new[] { Bos }.Concat(Enumerable.Repeat(1929, 75)).Append(Eos)));
        Assert.That(Sd15.Encode(over), Is.EqualTo(Sd15.Encode(full)));
    }

    [Test]
    public void TruncatedNamesWhatEncodeDrops()
    {
        string full = string.Join(" ", Enumerable.Repeat("dog", 75));
        Assert.That(Sd15.Truncated(full), Is.Null);
        Assert.That(Sd15.Truncated(full + " on the beach at dusk"), Is.EqualTo("on the beach at dusk"));
        // 96 tokens of "a photo of sks dog, " (6 each): 75 = 12 phrases and "a photo of"; the 21 dropped are the rest
        Assert.That(Sd15.Truncated(string.Concat(Enumerable.Repeat("a photo of sks dog, ", 16))),
            Is.EqualTo("sks dog , a photo of sks dog , a photo of sks dog , a photo of sks dog ,"));
    }

    [TestCase("A photo, of SKS-dog!", "a photo , of sks - dog !")]
    [TestCase("  it's   1234 &amp; more ", "it 's 1 2 3 4 & more")]
    [TestCase("café 東京 🐶", "café 東京 🐶")]
    [TestCase("supercalifragilisticexpialidocious", "supercalifragilisticexpialidocious")]
    public void DecodeGivesTheCleanedWordsSpaceSeparated(string prompt, string decoded)
    {
        int[] ids = Sd15.Encode(prompt);
        Assert.That(Sd15.Decode(ids), Is.EqualTo(decoded));
        Assert.That(Sd15.Decode(ids), Is.EqualTo(string.Join(" ", ClipTokenizer.Words(prompt))));
    }

    [Test]
    public void DecodeKeepsAPadTokenThatIsPartOfThePrompt()
    {
        string dir = ModelData.TempFolder();
        try
        {
            foreach (string file in Directory.GetFiles(ModelData.Path("tiny-sd", "tokenizer")))
            {
                string text = File.ReadAllText(file);
                if (file.EndsWith(".json") && !file.EndsWith("vocab.json"))
                    text = text.Replace("\"pad_token\": \"<|endoftext|>\"", "\"pad_token\": \"!\"");
                File.WriteAllText(Path.Combine(dir, Path.GetFileName(file)), text);
            }
            var sd2 = ClipTokenizer.Load(dir);                       // SD 2.x pads with "!" (id 0)
            var ids = sd2.Encode("wow!");
            Assert.That((sd2.PadId, ids[^1]), Is.EqualTo((0, 0)));
            Assert.That(sd2.Decode(ids), Is.EqualTo("wow !"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void DecodeRefusesIdsOutsideTheVocabulary() =>
        Assert.That(() => Sd15.Decode([Bos, 49408]), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("49408"));

    [Test]
    public void NormalizeCleansAsClipDoes() =>
        Assert.That(ClipTokenizer.Normalize("  Salt&amp;amp;PEPPER\t\u00a0 Éclair  "), Is.EqualTo("salt&pepper éclair"));

    // ---- BPE rules on a toy vocabulary whose every expected id can be worked out by hand ----

    string dir = "";

    [SetUp] public void CreateFolder() => dir = ModelData.TempFolder();
    [TearDown] public void DeleteFolder() => Directory.Delete(dir, recursive: true);

    ClipTokenizer Toy(string merges, string? config = null)
    {
        File.WriteAllText(Path.Combine(dir, "vocab.json"),
            """{"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "b": 3, "ab": 4, "c</w>": 5, "bc</w>": 6, "ab</w>": 7, "<pad>": 8, "b</w>": 9}""");
        File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\n" + merges);
        if (config is not null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config);
        return ClipTokenizer.Load(dir);
    }

    [Test]
    public void TheLowestRankedPairMergesFirst()
    {
        // "abc" starts as a · b · c</w>. With (a b) ranked first it becomes ab · c</w>, and no rule joins those;
        // with (b c</w>) first it becomes a · bc</w>.
        Assert.That(Toy("a b\nb c</w>\n").Tokenize("abc"), Is.EqualTo(new[] { 4, 5 }));
        Assert.That(Toy("b c</w>\na b\n").Tokenize("abc"), Is.EqualTo(new[] { 2, 6 }));
    }

    [Test]
    public void SymbolsMissingFromTheVocabularyBecomeTheUnknownToken()
    {
        // "ba" → b · a</w>: no merge applies, "b" is known (3) but "a</w>" is not, so it maps to unk = <|endoftext|> (1).
        // "x" → x</w>: unknown. "ab" → ab</w> through the merge (a b</w>).
        var toy = Toy("a b</w>\n");
        Assert.That(toy.Tokenize("ba x ab"), Is.EqualTo(new[] { 3, 1, 1, 7 }));
    }

    [Test]
    public void PaddingTokenAndLengthComeFromTheConfig()
    {
        var toy = Toy("a b</w>\n", """{"model_max_length": 6, "pad_token": "<pad>", "unk_token": {"content": "<|endoftext|>"}}""");
        Assert.That(toy.Encode("ab"), Is.EqualTo(new[] { 0, 7, 1, 8, 8, 8 }));
        Assert.That(toy.Encode("ab ab ab ab ab"), Is.EqualTo(new[] { 0, 7, 7, 7, 7, 1 }));
    }

    // ---- load errors name the file ----

    [Test]
    public void AMissingFolderIsNamed() =>
        Assert.That(() => ClipTokenizer.Load(Path.Combine(dir, "nope")), Throws.TypeOf<DirectoryNotFoundException>().With.Message.Contains("nope"));

    [Test]
    public void AMissingVocabularyIsNamed() =>
        Assert.That(() => ClipTokenizer.Load(dir), Throws.TypeOf<FileNotFoundException>().With.Message.Contains("vocab.json"));

    [Test]
    public void MissingMergesAreNamed()
    {
        File.WriteAllText(Path.Combine(dir, "vocab.json"), """{"<|startoftext|>": 0, "<|endoftext|>": 1}""");
        Assert.That(() => ClipTokenizer.Load(dir), Throws.TypeOf<FileNotFoundException>().With.Message.Contains("merges.txt"));
    }

    [TestCase("[1, 2]")]
    [TestCase("{\"a\": \"one\"}")]
    [TestCase("{\"a\": 1")]
    public void ABadVocabularyIsNamed(string vocab)
    {
        File.WriteAllText(Path.Combine(dir, "vocab.json"), vocab);
        File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\n");
        Assert.That(() => ClipTokenizer.Load(dir), Throws.TypeOf<InvalidDataException>().With.Message.Contains("vocab.json"));
    }

    [Test]
    public void ABadMergeLineIsNamed() =>
        Assert.That(() => Toy("a b\nabc\n"), Throws.TypeOf<InvalidDataException>().With.Message.Contains("merges.txt").And.Message.Contains("line 3"));

    [Test]
    public void ASpecialTokenMissingFromTheVocabularyIsNamed() =>
        Assert.That(() => Toy("a b\n", """{"pad_token": "<missing>"}"""),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("vocab.json").And.Message.Contains("<missing>"));

    [Test]
    public void ABadConfigIsNamed()
    {
        Assert.That(() => Toy("a b\n", "{not json"), Throws.TypeOf<InvalidDataException>().With.Message.Contains("tokenizer_config.json"));
        Assert.That(() => Toy("a b\n", """{"model_max_length": "long"}"""),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("tokenizer_config.json").And.Message.Contains("model_max_length"));
        Assert.That(() => Toy("a b\n", """{"model_max_length": 2000000000}"""),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("tokenizer_config.json").And.Message.Contains("model_max_length"));
        Assert.That(() => Toy("a b\n", """{"bos_token": 5}"""),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("tokenizer_config.json").And.Message.Contains("bos_token"));
    }

    /// <summary>Fuzzing (issue 15): seeded random text (any UTF-16 code unit, lone surrogates and control characters
    /// included, CLIP's special-token strings, up to 5,000 characters): Encode never throws and always gives BOS, then
    /// ids of the vocabulary, an EOS, and MaxLength ids in all; Decode of them never throws.</summary>
    [Test]
    public void RandomTextAlwaysEncodesToMaxLengthIds([Values(1, 2)] int seed)
    {
        var rng = new Random(seed);
        string[] pieces = ["<|startoftext|>", "<|endoftext|>", "&amp;", "&#xD800;", "\u0000", "\t\r\n", "🐶", "e\u0301", "\uFEFF", " ", "a"];
        for (int c = 0; c < 300; c++)
        {
            int length = c % 50 == 0 ? 5000 : rng.Next(0, 120);
            var text = new System.Text.StringBuilder();
            while (text.Length < length)
                text.Append(rng.Next(4) == 0 ? pieces[rng.Next(pieces.Length)] : ((char)rng.Next(0, 0x10000)).ToString());
            string prompt = text.ToString();
            int[] ids = Sd15.Encode(prompt);
            Assert.That(ids, Has.Length.EqualTo(77), $"case {c}");
            Assert.That(ids[0], Is.EqualTo(Bos), $"case {c}");
            Assert.That(ids, Has.Some.EqualTo(Eos).And.All.InRange(0, Eos), $"case {c}");
            Assert.That(() => Sd15.Decode(ids), Throws.Nothing, $"case {c}");
            Assert.That(() => Sd15.Truncated(prompt), Throws.Nothing, $"case {c}");
        }
    }
}
