// Wording shared by error messages and reports: counts with the right plural, and JSON errors without .NET's position suffix.
using System.Globalization;
using System.Text.Json;

namespace DreamBooth.Models.Formats;

public static class Wording
{
    /// <summary>"1 byte", "2 bytes", "1024 tensors".</summary>
    public static string Count(long n, string noun) => $"{n.ToString(CultureInfo.InvariantCulture)} {noun}{(n == 1 ? "" : "s")}";

    public static string Count(ulong n, string noun) => $"{n.ToString(CultureInfo.InvariantCulture)} {noun}{(n == 1 ? "" : "s")}";

    /// <summary>The parser's reason with a 1-based line and column instead of "LineNumber: 0 | BytePositionInLine: 1.".</summary>
    public static string Json(JsonException e)
    {
        string reason = e.Message;
        int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut >= 0) reason = reason[..cut];
        reason = reason.Replace(" Path: $", "").TrimEnd(' ', '.', '|');
        return e.LineNumber is { } line ? $"{reason} (line {line + 1}, column {e.BytePositionInLine + 1})" : reason;
    }
}
