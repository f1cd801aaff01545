// The DreamBooth metrics of the toy world on constructed cases: each must move the right way.
using DreamBooth.Trainer.World;
using NUnit.Framework;

namespace DreamBooth.Tests.Trainer;

public class ToyMetricsTests
{
    static SubjectFeatures Subject(int pose, int size = 64) => ToyMetrics.Features(ToySubject.Render(ToySubject.Pose(pose), size), size);

    static SubjectFeatures Plain(Scene s, int size = 64) => ToyMetrics.Features(ToyWorld.Render(s, size), size);

    [Test]
    public void TheSubjectIsCloserToItselfThanToOtherObjects()
    {
        var real = Enumerable.Range(0, 4).Select(k => Subject(k)).ToList();
        double self = ToyMetrics.Fidelity([Subject(0)], real);
        double plainStar = ToyMetrics.Fidelity([Plain(ToySubject.Pose(0) with { Colour = 3 })], real);   // a yellow star
        double circle = ToyMetrics.Fidelity([Plain(new Scene(1, 0, Shape.Circle, 0.5, 0.5, 0.3, 0))], real);   // a red circle
        TestContext.Out.WriteLine($"fidelity: the subject {self:F3}, a plain yellow star {plainStar:F3}, a red circle {circle:F3}");
        Assert.That(self, Is.GreaterThan(0.9));
        Assert.That(plainStar, Is.LessThan(self - 0.2));
        Assert.That(circle, Is.LessThan(plainStar));
    }

    [Test]
    public void TheFinePatternCountsOnlyWhereItIsVisible()
    {
        var striped = Subject(0);
        var smooth = ToyMetrics.Features(ToyWorld.Render(ToySubject.Pose(0), 64, (x, y) =>
            x * x + y * y <= 0.18 * 0.18 ? ((byte)245, (byte)245, (byte)245) : x < 0 ? ((byte)240, (byte)220, (byte)40) : ((byte)140, (byte)60, (byte)190)), 64);
        TestContext.Out.WriteLine($"pattern energy: striped {striped.Pattern:F4}, without stripes {smooth.Pattern:F4}");
        Assert.That(striped.Pattern, Is.GreaterThan(2 * smooth.Pattern));
        Assert.That(ToyMetrics.Similarity(striped, smooth), Is.LessThan(ToyMetrics.Similarity(striped, Subject(1))));
    }

    [Test]
    public void DiversityIsZeroForCopiesAndGrowsWithVariety()
    {
        var star = Plain(ToyWorld.Sample(1, 0) with { Shape = Shape.Star });
        Assert.That(ToyMetrics.Diversity([star, star, star]), Is.EqualTo(0).Within(1e-12));
        var varied = Enumerable.Range(0, 6).Select(i => Plain(ToyWorld.Sample(2, i) with { Shape = Shape.Star })).ToList();
        var mixed = Enumerable.Range(0, 6).Select(i => Plain(ToyWorld.Sample(3, i))).ToList();
        double stars = ToyMetrics.Diversity(varied), any = ToyMetrics.Diversity(mixed);
        TestContext.Out.WriteLine($"DIV: copies 0, stars of varied colours {stars:F3}, varied shapes and colours {any:F3}");
        Assert.That(stars, Is.GreaterThan(0.2));
        Assert.That(any, Is.GreaterThan(stars));
    }

    [Test]
    public void PromptFidelityCountsMatchingBackgrounds()
    {
        var onBlue = Enumerable.Range(0, 3).Select(k => ToyMetrics.Features(ToySubject.Render(ToySubject.Pose(k) with { Background = 2 }, 32), 32)).ToList();
        Assert.That(ToyMetrics.PromptFidelity(onBlue, [2, 2, 2]), Is.EqualTo(1));
        Assert.That(ToyMetrics.PromptFidelity(onBlue, [2, 5, 7]), Is.EqualTo(1.0 / 3).Within(1e-12));
    }
}
