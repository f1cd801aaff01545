// `dreambooth tokenize`: prints the CLIP token ids a prompt encodes to, as the text encoder receives them.
using System.CommandLine;
using DreamBooth.Models.Tokenizer;

namespace DreamBooth.Trainer;

public static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer folder (vocab.json, merges.txt), e.g. MODEL/tokenizer", Required = true };
        var prompt = new Argument<string>("prompt") { Description = "The text to encode" };
        var command = new Command("tokenize", "Print the token ids of a prompt (BOS, tokens, EOS, padding: model_max_length ids on one line).")
        {
            tokenizer, prompt,
        };
        command.SetAction(parse => Guard.Run("tokenize", () =>
        {
            var ids = ClipTokenizer.Load(parse.GetValue(tokenizer)!).Encode(parse.GetValue(prompt)!);
            Console.WriteLine(string.Join(' ', ids));
            return 0;
        }));
        return command;
    }
}
