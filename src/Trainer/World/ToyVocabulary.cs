// The toy world's CLIP-format tokenizer files (vocab.json, merges.txt), made so every caption word is one token.
using System.Text.Json;
using DreamBooth.Models.Tokenizer;

namespace DreamBooth.Trainer.World;

/// <summary>
/// A byte-level BPE vocabulary in CLIP's format, read by the same <see cref="ClipTokenizer"/> as SD's: the 256 byte
/// symbols and their end-of-word forms (so any text still encodes), then, for each word of <see cref="ToyWorld.Words"/>
/// (the identifiers included), the merges that join it into one token, then &lt;|startoftext|&gt; and &lt;|endoftext|&gt;.
/// A word's merges are added after all earlier ones, joining the first two symbols BPE leaves, until one symbol remains;
/// a merge ranked after every other never changes how an earlier word encodes, so each word stays one token.
/// Prompts are at most <see cref="MaxLength"/> tokens: captions have at most 8 words.
/// </summary>
public static class ToyVocabulary
{
    public const int MaxLength = 16;

    public static (List<string> Vocab, List<(string, string)> Merges) Build()
    {
        var alphabet = ClipTokenizer.ByteAlphabet.Select(c => c.ToString()).ToList();
        var vocab = alphabet.Concat(alphabet.Select(c => c + "</w>")).ToList();
        var merges = new List<(string, string)>();
        foreach (string word in ToyWorld.Words())
        {
            var symbols = Encode(word, merges);
            while (symbols.Count > 1)
            {
                merges.Add((symbols[0], symbols[1]));
                vocab.Add(symbols[0] + symbols[1]);
                symbols = Encode(word, merges);
            }
        }
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        return (vocab, merges);
    }

    /// <summary>BPE as the tokenizer runs it: merge the lowest-ranked adjacent pair until none is ranked.</summary>
    static List<string> Encode(string word, List<(string, string)> merges)
    {
        var symbols = word.Select(c => c.ToString()).ToList();
        symbols[^1] += "</w>";
        while (true)
        {
            int best = -1, rank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                int r = merges.IndexOf((symbols[i], symbols[i + 1]));
                if (r >= 0 && r < rank) (best, rank) = (i, r);
            }
            if (best < 0) return symbols;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
    }

    /// <summary>Writes the tokenizer/ folder: vocab.json, merges.txt, tokenizer_config.json (model_max_length 16) and
    /// special_tokens_map.json.</summary>
    public static void Write(string dir)
    {
        var (vocab, merges) = Build();
        Directory.CreateDirectory(dir);
        var ids = vocab.Select((token, id) => (token, id)).ToDictionary(p => p.token, p => p.id);
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(ids));
        File.WriteAllLines(Path.Combine(dir, "merges.txt"), merges.Select(m => $"{m.Item1} {m.Item2}").Prepend("#version: 0.2"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            $$"""{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": {{MaxLength}}}""");
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"),
            """{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}""");
    }
}
