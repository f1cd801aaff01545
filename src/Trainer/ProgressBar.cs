// A progress bar with rate (it/s) and ETA on stderr, for every long job; plain lines when stderr is not a terminal.
using Spectre.Console;
using Spectre.Console.Rendering;

namespace DreamBooth.Trainer;

/// <summary>Reports progress: <paramref name="done"/> steps so far, and an optional status (the loss) shown beside the bar.</summary>
public delegate void Advance(int done, string? status = null);

public static class ProgressBar
{
    static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>Runs work(advance) while drawing a bar of <paramref name="total"/> steps, starting at
    /// <paramref name="start"/> (a resumed run); work calls advance(done, status). The rate counts this run's steps.</summary>
    public static void Run(string description, int total, Action<Advance> work, int start = 0)
    {
        if (Console.IsErrorRedirected)
        {   // logs and CI: one line per tenth, so the rate and ETA still show
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int reported = start * 10 / Math.Max(total, 1);
            work((done, status) =>
            {
                if (done * 10 / total == reported && done != total) return;
                reported = done * 10 / total;
                double rate = (done - start) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                var eta = rate > 0 ? TimeSpan.FromSeconds((total - done) / rate) : TimeSpan.Zero;
                Console.Error.WriteLine($"{description}: {done}/{total} ({rate:F2} it/s, ETA {eta:hh\\:mm\\:ss})" +
                                        (status is null ? "" : $" {status}"));
            });
            return;
        }
        Err.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(start),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(description, maxValue: total);
                task.Value = start;
                work((done, status) =>
                {
                    task.Value = done;
                    if (status is not null) task.Description = $"{description} {status}";
                });
            });
    }

    /// <summary>Steps per second so far, as diffusers' tqdm bars show it.</summary>
    sealed class RateColumn(int start) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.ElapsedTime is { TotalSeconds: > 0 } e ? $"{(task.Value - start) / e.TotalSeconds:F2} it/s" : "- it/s");
    }
}
