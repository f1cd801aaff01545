// The warning diffusers gives when a prompt is longer than the text encoder reads, naming what is dropped.
using DreamBooth.Models.Tokenizer;

namespace DreamBooth.Trainer;

static class PromptLength
{
    public static void Warn(ClipTokenizer tokenizer, string option, string prompt)
    {
        if (tokenizer.Truncated(prompt) is { } dropped)
            Console.Error.WriteLine($"warning: {option} is longer than the {tokenizer.MaxLength} tokens the text encoder reads; " +
                                    $"this part is dropped: \"{dropped}\"");
    }
}
