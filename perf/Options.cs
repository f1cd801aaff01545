// Positional integers and --name value options of the perf commands.
namespace DreamBooth.Perf;

sealed class Options
{
    readonly List<string> _positional = [];
    readonly Dictionary<string, string?> _named = [];

    public Options(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--")) { _positional.Add(args[i]); continue; }
            bool hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--");
            _named[args[i][2..]] = hasValue ? args[++i] : null;
        }
    }

    public int Reps => Int("reps", 9);
    public bool Check => !_named.ContainsKey("no-check");
    public bool Flag(string name) => _named.ContainsKey(name);
    public string? Text(string name) => _named.TryGetValue(name, out var v) ? v : null;
    public int Int(string name, int fallback) => _named.TryGetValue(name, out var v) && v != null ? Parse(v, name) : fallback;

    /// <summary>Positional integer i, or the fallback when absent (a required one has no fallback).</summary>
    public int At(int i, string name, int? fallback = null) =>
        i < _positional.Count ? Parse(_positional[i], name)
        : fallback ?? throw new ArgumentException($"missing argument {name}");

    static int Parse(string text, string name) =>
        int.TryParse(text, out int v) ? v : throw new ArgumentException($"{name} must be an integer, got '{text}'");
}
