// NumPy broadcasting of two shapes: the rule every tier and the autograd ops share.
namespace DreamBooth.Kernels;

public static class Broadcasting
{
    /// <summary>The NumPy broadcast of two shapes: right-aligned, each pair of dims equal or one of them 1.</summary>
    public static int[] Shape(string op, ReadOnlySpan<int> aShape, ReadOnlySpan<int> bShape)
    {
        Check.Count(op, "a", aShape);
        Check.Count(op, "b", bShape);
        int rank = Math.Max(aShape.Length, bShape.Length);
        var shape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int da = Dim(aShape, d, rank), db = Dim(bShape, d, rank);
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Check.Shape(aShape)} and {Check.Shape(bShape)} do not broadcast " +
                                            $"(dim {d} of the result: {da} vs {db})");
            shape[d] = Math.Max(da, db);
        }
        return shape;
    }

    /// <summary>Dim d of a shape right-aligned to the given rank (missing leading dims are 1).</summary>
    public static int Dim(ReadOnlySpan<int> shape, int d, int rank) => d - (rank - shape.Length) is var i && i >= 0 ? shape[i] : 1;
}
