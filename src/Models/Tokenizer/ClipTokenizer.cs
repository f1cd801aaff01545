// The CLIP byte-level BPE tokenizer of Stable Diffusion, loaded from a diffusers tokenizer/ folder (vocab.json + merges.txt).
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DreamBooth.Models.Tokenizer;

/// <summary>
/// Text → ids as the slow CLIPTokenizer does it:
///  1. clean: HTML-unescape twice, collapse runs of whitespace to one space, trim, lower-case;
///  2. split into words with the CLIP pattern (special tokens, English contractions, runs of letters, single digits,
///     runs of anything else; whitespace separates words and is dropped);
///  3. spell each word's UTF-8 bytes with the 256 printable stand-ins of the byte-level alphabet, mark its last symbol
///     with "&lt;/w&gt;", and merge adjacent symbol pairs lowest merge rank first until no ranked pair is left;
///  4. look each symbol up in the vocabulary (a symbol it lacks becomes the unknown token);
///  5. frame as BOS, at most MaxLength - 2 ids, EOS, then pad to MaxLength.
/// Differences from the Python reference, for text rarely seen in prompts: letters and digits outside the Basic
/// Multilingual Plane count as "anything else" in step 2 (.NET regex classes see UTF-16 units), and HTML entities are
/// the HTML 4 set of WebUtility.HtmlDecode; ftfy's repairs of mis-decoded text are not done; and text is not
/// NFC-normalised (the build runs with invariant globalization, where string.Normalize changes nothing), so a letter
/// typed as base + combining accent tokenizes differently from its precomposed form.
/// </summary>
public sealed partial class ClipTokenizer
{
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    public int UnkId { get; }
    /// <summary>Length of an encoded prompt, BOS and EOS included (77 for every SD text encoder).</summary>
    public int MaxLength { get; }

    /// <summary>The largest model_max_length accepted: every encoded prompt is an array of this many ids, so a config
    /// claiming billions must fail at load, not exhaust memory at the first prompt.</summary>
    public const int MaxModelLength = 1 << 16;

    readonly Dictionary<string, int> vocab;
    readonly string[] tokens;                                   // id → token
    readonly Dictionary<(string, string), int> ranks;          // merge pair → rank, lower merges first
    readonly ConcurrentDictionary<string, string[]> cache = new();
    readonly string bosToken, eosToken;

    static readonly char[] ByteToChar = BuildByteAlphabet();

    /// <summary>The 256 printable stand-ins of the byte-level alphabet, by byte value (what a vocabulary spells words with).</summary>
    public static IReadOnlyList<char> ByteAlphabet => ByteToChar;
    static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    ClipTokenizer(Dictionary<string, int> vocab, Dictionary<(string, string), int> ranks, string bos, string eos, string pad, string unk,
        int maxLength, string vocabPath)
    {
        this.vocab = vocab;
        this.ranks = ranks;
        tokens = new string[vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) tokens[id] = token;
        int Id(string token, string role) => vocab.TryGetValue(token, out int id) ? id
            : throw new InvalidDataException($"{vocabPath}: the {role} token \"{token}\" is not in the vocabulary");
        BosId = Id(bos, "begin-of-text");
        EosId = Id(eos, "end-of-text");
        PadId = Id(pad, "padding");
        UnkId = Id(unk, "unknown");
        MaxLength = maxLength;
        bosToken = bos;
        eosToken = eos;
    }

    /// <summary>Loads vocab.json and merges.txt (required) and tokenizer_config.json / special_tokens_map.json
    /// (optional: the special tokens and model_max_length, CLIPTokenizer's defaults where absent) from dir.</summary>
    public static ClipTokenizer Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such tokenizer folder");
        string vocabPath = Path.Combine(dir, "vocab.json"), mergesPath = Path.Combine(dir, "merges.txt");
        var vocab = ReadVocab(vocabPath);
        var ranks = ReadMerges(mergesPath);

        var config = ReadOptionalObject(Path.Combine(dir, "tokenizer_config.json"));
        var special = ReadOptionalObject(Path.Combine(dir, "special_tokens_map.json"));
        string Token(string key, string fallback) =>
            TokenContent(config, key) ?? TokenContent(special, key) ?? fallback;
        int maxLength = 77;
        if (config is { } c && c.Element.TryGetProperty("model_max_length", out var m))
        {
            if (m.ValueKind != JsonValueKind.Number || !m.TryGetInt32(out maxLength) || maxLength < 2 || maxLength > MaxModelLength)
                throw new InvalidDataException($"{c.Path}: model_max_length must be an integer in [2, {MaxModelLength}], not {m.GetRawText()}");
        }
        return new ClipTokenizer(vocab, ranks, Token("bos_token", "<|startoftext|>"), Token("eos_token", "<|endoftext|>"),
            Token("pad_token", "<|endoftext|>"), Token("unk_token", "<|endoftext|>"), maxLength, vocabPath);
    }

    /// <summary>The cleaned, lower-cased text the word pattern runs on.</summary>
    public static string Normalize(string text)
    {
        text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        return Whitespace().Replace(text.Trim(), " ").Trim().ToLowerInvariant();
    }

    /// <summary>The words BPE runs on, in order: the matches of the CLIP pattern in the normalised text.</summary>
    public static IEnumerable<string> Words(string text) => WordPattern().Matches(Normalize(text)).Select(m => m.Value);

    /// <summary>The BPE token ids of text, without BOS/EOS, padding or truncation.</summary>
    public List<int> Tokenize(string text)
    {
        var ids = new List<int>();
        foreach (string word in Words(text))
            foreach (string symbol in cache.GetOrAdd(word, Bpe))
                ids.Add(vocab.TryGetValue(symbol, out int id) ? id : UnkId);
        return ids;
    }

    /// <summary>MaxLength ids: BOS, the first MaxLength - 2 ids of text, EOS, then padding.</summary>
    public int[] Encode(string text)
    {
        var ids = Tokenize(text);
        int kept = Math.Min(ids.Count, MaxLength - 2);
        var encoded = new int[MaxLength];
        encoded[0] = BosId;
        ids.CopyTo(0, encoded, 1, kept);
        encoded[kept + 1] = EosId;
        encoded.AsSpan(kept + 2).Fill(PadId);
        return encoded;
    }

    /// <summary>What <see cref="Encode"/> drops of text (the tokens past MaxLength − 2), decoded; null when all of it fits.</summary>
    public string? Truncated(string text)
    {
        var ids = Tokenize(text);
        return ids.Count <= MaxLength - 2 ? null : Decode(ids.Skip(MaxLength - 2).Where(id => id != EosId));
    }

    /// <summary>Text of ids, leaving out BOS, and stopping at the first EOS (the padding follows it): the words joined by
    /// single spaces. A pad id before EOS is text: SD 2.x pads with "!", which a prompt may contain.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var symbols = new StringBuilder();
        foreach (int id in ids)
        {
            if (id < 0 || id >= tokens.Length || tokens[id] is null)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is not in the vocabulary");
            if (id == EosId) break;
            if (id != BosId) symbols.Append(tokens[id]);
        }
        var bytes = new byte[symbols.Length];
        for (int i = 0; i < symbols.Length; i++)
            bytes[i] = CharToByte.TryGetValue(symbols[i], out byte b) ? b
                : throw new ArgumentException($"token text '{symbols[i]}' is outside the byte-level alphabet", nameof(ids));
        return Encoding.UTF8.GetString(bytes).Replace("</w>", " ").Trim();
    }

    /// <summary>The symbols of one word after every ranked merge. Special tokens stay whole.</summary>
    string[] Bpe(string word)
    {
        if (word == bosToken || word == eosToken) return [word];
        var utf8 = Encoding.UTF8.GetBytes(word);
        var symbols = new List<string>(utf8.Length);
        foreach (byte b in utf8) symbols.Add(ByteToChar[b].ToString());
        symbols[^1] += "</w>";

        while (symbols.Count > 1)
        {
            int best = int.MaxValue;
            (string, string) pair = default;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < best) { best = rank; pair = (symbols[i], symbols[i + 1]); }
            if (best == int.MaxValue) break;

            var merged = new List<string>(symbols.Count);             // merge every occurrence, left to right
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && symbols[i] == pair.Item1 && symbols[i + 1] == pair.Item2)
                {
                    merged.Add(pair.Item1 + pair.Item2);
                    i++;
                }
                else merged.Add(symbols[i]);
            }
            symbols = merged;
        }
        return [.. symbols];
    }

    /// <summary>GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes (controls,
    /// space, DEL, NBSP, soft hyphen...) take the characters from U+0100 on, in byte order.</summary>
    static char[] BuildByteAlphabet()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = (char)(printable ? b : next++);
        }
        return map;
    }

    static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the tokenizer's vocabulary is missing", path);
        Dictionary<string, int>? vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a JSON object of token → id: {Formats.Wording.Json(e)}", e); }
        if (vocab is null || vocab.Count == 0) throw new InvalidDataException($"{path}: the vocabulary is empty");
        if (vocab.Values.Any(id => id < 0 || id > 10_000_000))
            throw new InvalidDataException($"{path}: token ids must lie in [0, 10000000]");
        if (vocab.Values.Distinct().Count() != vocab.Count)
            throw new InvalidDataException($"{path}: two tokens share one id");
        return vocab;
    }

    /// <summary>One merge per line, "left right", rank = order in the file; a first "#version" line is skipped.</summary>
    static Dictionary<(string, string), int> ReadMerges(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the tokenizer's merges are missing", path);
        var ranks = new Dictionary<(string, string), int>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path, Encoding.UTF8))
        {
            lineNumber++;
            if ((lineNumber == 1 && line.StartsWith("#version")) || line.Length == 0) continue;
            string[] parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new InvalidDataException($"{path}: line {lineNumber} is \"{line}\", not a merge \"left right\"");
            ranks.TryAdd((parts[0], parts[1]), ranks.Count);
        }
        return ranks;
    }

    static (string Path, JsonElement Element)? ReadOptionalObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var root = JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: a JSON {root.ValueKind}, not an object");
            return (path, root);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {Formats.Wording.Json(e)}", e); }
    }

    /// <summary>A special token is written either as its text or as an AddedToken object {"content": text, ...}.</summary>
    static string? TokenContent((string Path, JsonElement Element)? file, string key)
    {
        if (file is not { } f || !f.Element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            return content.GetString();
        throw new InvalidDataException($"{f.Path}: {key} must be a string or an object with a \"content\" string, not {value.GetRawText()}");
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex WordPattern();
}
