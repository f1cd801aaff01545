// A progress bar with rate (it/s) and ETA on stderr, for every long job; plain lines when stderr is not a terminal.
using Spectre.Console;
using Spectre.Console.Rendering;

namespace DreamBooth.Trainer;

public static class ProgressBar
{
    static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>Runs work(advance) while drawing a bar of <paramref name="total"/> steps; work calls advance(done).</summary>
    public static void Run(string description, int total, Action<Action<int>> work)
    {
        if (Console.IsErrorRedirected)
        {   // logs and CI: one line per tenth, so the rate and ETA still show
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int reported = 0;
            work(done =>
            {
                if (done * 10 / total == reported && done != total) return;
                reported = done * 10 / total;
                double rate = done / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                Console.Error.WriteLine($"{description}: {done}/{total} ({rate:F2} it/s, ETA {TimeSpan.FromSeconds((total - done) / rate):hh\\:mm\\:ss})");
            });
            return;
        }
        Err.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(description, maxValue: total);
                work(done => task.Value = done);
            });
    }

    /// <summary>Steps per second so far, as diffusers' tqdm bars show it.</summary>
    sealed class RateColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.ElapsedTime is { TotalSeconds: > 0 } e ? $"{task.Value / e.TotalSeconds:F2} it/s" : "- it/s");
    }
}
