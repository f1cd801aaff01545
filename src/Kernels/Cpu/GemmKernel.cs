// The blocked SGEMM every Cpu matrix op runs on (GotoBLAS/BLIS structure): packed panels, a register-tiled micro-kernel.
// f16/bf16 operands are widened to f32 while packing, so the micro-kernel and its f32 accumulation are the same.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DreamBooth.Kernels.Cpu;

/// <summary>
/// C = alpha·op(A)·op(B) + beta·C + colBias[j] + rowBias[i] over row-major matrices with leading dimensions.
/// One task computes a block of C with this loop nest (outermost first):
///   ic: MC rows of C                    pc: KC of the depth, pack op(A)[ic.., pc..] into MR-row micro-panels (MR×KC each)
///   jc: NC columns, pack op(B)[pc.., jc..] into NR-column micro-panels (KC×NR each; the KC×NC block stays in L2)
///   ir: one A micro-panel (stays in L1)  jr: one B micro-panel → micro-kernel: MR×NR of C held in registers over KC.
/// Packing reads the transposes, so the micro-kernel always sees one layout; edge panels are zero-padded. An
/// untransposed f32 A is read in place instead (DirectA: the micro-kernel takes a panel's rows at any stride; a
/// transposed one too where C is small), and so is an untransposed f32 B when C has few rows (DirectB) or when it is
/// given by row pointers. An f16/bf16 operand is widened while packing: each contiguous run of it becomes f32 (on the
/// stack, or straight into a B panel) with the Cast op's vector conversion, then is laid out like f32, so no f32 copy
/// of a whole operand exists. Tasks split
/// the longer side of C (or the batch, in CpuBackend.Gemm) across cores, or the depth when C is small and k long (SplitDepth).
/// With the longer side split, every core reads the same panels of the other operand: all cores pack them together, once
/// per depth slab, into one shared buffer; each task packs its own part of the split operand.
/// </summary>
internal static unsafe class GemmKernel
{
    internal const int MR = 6;
    /// <summary>Columns of a micro-tile: four Vector512 (24 zmm accumulators) when the backend runs Vector512 (wide), else
    /// two Vector256 (12 ymm). The width is the backend's decision (CpuBackend.UseVector512), passed to every call.</summary>
    internal static int NR(bool wide) => wide ? 64 : 16;
    const int KC = 256;    // an A micro-panel is 6 KiB (L1); a B block KC×NC is 512 KiB (L2)
    const int NC = 512;
    const int MC = 1032;   // multiple of MR; a packed A block is ~1 MiB
    const int SharedWidth = 4 * NC;   // columns of B packed at once for all cores (2 MiB, twice for the double buffer)
    const int RowsAhead = 4;          // B packing fetches this many rows ahead
    const double ParallelMinFlops = 4e6;   // below this, a parallel loop costs more than it saves
    const int DepthSplitRatio = 8;         // k at least this many times C's longer side: split the depth (SplitDepth)

    /// <summary>C (m, n) = alpha·op(A)·op(B) + beta·C + colBias[j] + rowBias[i]. op(A) is (m, k): A is stored (m, k), or
    /// (k, m) when transA; op(B) is (k, n): B is stored (k, n), or (n, k) when transB. ld* are elements between rows.
    /// C is not read when beta is 0; either bias may be null. Runs on every core unless parallel is false (callers
    /// that already run one GEMM per core). Every element's sum order depends on the shape only, never on the core
    /// count or on parallel, so results are bit-identical on any machine of the same vector width.</summary>
    internal static void Sgemm(bool wide, int m, int n, int k, float alpha, Operand a, long lda, bool transA, Operand b, long ldb,
        bool transB, float beta, float* c, long ldc, float* colBias = null, float* rowBias = null, bool parallel = true)
    {
        if (b.Pointed && transB) throw new ArgumentException("gemm: a B given by row pointers is read untransposed");
        var job = new Job(wide, m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc, colBias, rowBias);
        if (2.0 * m * n * k < ParallelMinFlops) { job.Run(0, m, 0, n); return; }
        if (k >= DepthSplitRatio * Math.Max(m, n) && !b.Pointed)
        {
            SplitDepth(wide, parallel, m, n, k, alpha, a, lda, transA, b, ldb, transB, beta, c, ldc, colBias, rowBias);
            return;
        }
        int threads = parallel ? Environment.ProcessorCount : 1;
        if (threads == 1) job.Run(0, m, 0, n);
        else job.RunShared(threads, m, n, rows: m >= n);
    }

    /// <summary>A deep product of a small C (a weight gradient summed over many rows) splits its depth instead, so each
    /// operand is packed once in all, not once per block of C. The parts follow the shape only, never the core count (they
    /// run in turn when not parallel): one per DepthSplitRatio·max(m, n) of depth, rounded down to 2, 4 or 8 (so that
    /// even core counts share them evenly), as each part costs an (m, n) partial sum. Part 0 lands on C (with beta and the biases), the others in scratch, added onto C in part
    /// order: the same sum every run, on any number of cores.</summary>
    static void SplitDepth(bool wide, bool parallel, int m, int n, int k, float alpha, Operand a, long lda, bool transA, Operand b, long ldb, bool transB,
        float beta, float* c, long ldc, float* colBias, float* rowBias)
    {
        int depth = RoundUp(CeilDiv(k, 1 << BitOperations.Log2((uint)Math.Clamp(k / (DepthSplitRatio * Math.Max(m, n)), 2, 8))), KC);
        int parts = CeilDiv(k, depth);
        long size = (long)m * n;
        float* partial = Scratch.Current.Get(Scratch.DepthParts, (parts - 1) * size);   // parts 1.. as (m, n)
        void Part(int q)
        {
            int k0 = q * depth, kq = Math.Min(k, k0 + depth) - k0;
            Operand aq = a.At(transA ? k0 * lda : k0), bq = b.At(transB ? k0 : k0 * ldb);
            var job = q == 0 ? new Job(wide, m, n, kq, alpha, aq, lda, transA, bq, ldb, transB, beta, c, ldc, colBias, rowBias)
                : new Job(wide, m, n, kq, alpha, aq, lda, transA, bq, ldb, transB, 0f, partial + (q - 1) * size, n, null, null);
            job.Run(0, m, 0, n);
        }
        if (parallel) Cores.For(0, parts, Part);
        else for (int q = 0; q < parts; q++) Part(q);
        for (int q = 1; q < parts; q++)
            for (int i = 0; i < m; i++)
            {
                float* row = c + i * ldc, add = partial + (q - 1) * size + (long)i * n;
                int j = 0;
                if (wide)
                    for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
                        (Vector512.Load(row + j) + Vector512.Load(add + j)).Store(row + j);
                else
                    for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
                        (Vector256.Load(row + j) + Vector256.Load(add + j)).Store(row + j);
                for (; j < n; j++) row[j] += add[j];
            }
    }

    internal static int CeilDiv(int a, int b) => (a + b - 1) / b;
    internal static int RoundUp(int a, int b) => CeilDiv(a, b) * b;

    readonly struct Job(bool wide, int m, int n, int k, float alpha, Operand a, long lda, bool transA, Operand b, long ldb, bool transB,
        float beta, float* c, long ldc, float* colBias, float* rowBias)
    {
        readonly int _nr = NR(wide);

        /// <summary>C[i0..i1, j0..j1] on the calling thread, packing both operands itself.</summary>
        public void Run(int i0, int i1, int j0, int j1)
        {
            var scratch = Scratch.Current;
            float* pa = scratch.Get(Scratch.PackedA, (long)MC * KC);
            float* pb = scratch.Get(Scratch.PackedB, (long)KC * NC);
            bool direct = DirectB(i1 - i0, j1 - j0);
            for (int ic = i0; ic < i1; ic += MC)
            {
                int mc = Math.Min(MC, i1 - ic);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    var panels = PanelsOfA(pa, ic, mc, pc, kc);
                    for (int jc = j0; jc < j1; jc += NC)
                    {
                        int nc = Math.Min(NC, j1 - jc);
                        if (BPointed) Block(panels, PointedAt(pc, jc), ic, mc, pc, kc, jc, nc);
                        else if (direct) Block(panels, new StridedB(b.F32 + pc * ldb + jc, ldb, 1), ic, mc, pc, kc, jc, nc);
                        else
                        {
                            PackB(pb, pc, kc, jc, nc);
                            Block(panels, new StridedB(pb, _nr, kc), ic, mc, pc, kc, jc, nc);
                        }
                    }
                }
            }
        }

        /// <summary>Whether Run reads B's rows where they are instead of packing them: for few rows of C, packing B (each
        /// element then serves only those rows) costs more than the micro-kernel's strided loads from L2. Only whole
        /// panels (a ragged one would read past its row), and not where B's rows are a multiple of 4 KiB apart and C has
        /// more than 128 rows (the rows then share L1 sets). 1 core (Xeon, 2026-12-05), ms packed → direct:
        /// [64x4096]ᵀ·[4096x64] 0.51 → 0.46, [128x1024]ᵀ·[1024x128] 0.35 → 0.30, [128x1152]·[1152x256] 0.72 → 0.56,
        /// [384x1152]·[1152x256] 1.67 → 1.57; [256x1024]·[1024x1024] 3.88 → 4.19 (4 KiB apart), [1032x256]·[256x128]
        /// 0.52 → 0.52-0.64.</summary>
        bool DirectB(int rows, int cols) => !transB && b.Direct && cols % _nr == 0 && (rows <= 128 || rows <= 512 && ldb % 1024 != 0);

        /// <summary>Whether the micro-kernel reads op(A)'s rows where they are: an untransposed f32 A is never packed,
        /// since the micro-kernel reads a panel's six rows at any distance apart (APanels). Packing it cost 3 % of the
        /// bench UNet's step on 1 core (perf, Xeon, 2026-12-05), the interleaving of six rows one float at a time. A
        /// transposed f32 A (the weight gradients dyᵀ·x) is read in place too where C is at most 512×128: a panel's six
        /// elements of each depth are then adjacent, one line serving 2-3 panels, and few B panels re-read them. 1 core
        /// (Xeon, 2026-12-05), ms packed → in place: [64x4096]ᵀ·[4096x64] 0.31-0.33 → 0.25 (Vector256 code 0.54-0.56 →
        /// 0.47), [128x1024]ᵀ·[1024x128] 0.25-0.27 → 0.21 (0.45-0.46 → 0.42), [128x256]ᵀ·[256x128] 0.061-0.064 → 0.040,
        /// [512x4096]ᵀ·[4096x64] 2.32-2.44 → 2.24-2.25 (3.98-4.05 → 3.98-3.99). Larger C re-reads the strided lines once
        /// per B panel: [1024x1024]ᵀ·[1024x1024] 13.1 → 15.5, [2048x1920]ᵀ·[1920x640] 34.0-34.5 → 37.2-38.0, and in
        /// Vector256 code [1024x256]ᵀ·[256x128] 0.89-0.90 → 1.04-1.19.</summary>
        bool DirectA => a.Direct && (!transA || m <= 512 && n <= 128);

        /// <summary>The panels of op(A)[ic.., pc..]: A's own rows (DirectA), else packed at pa.</summary>
        APanels Panels(float* pa, int ic, int pc, int kc) =>
            !DirectA ? new(pa, kc, 1, MR) : transA ? new(a.F32 + pc * lda + ic, 1, 1, lda) : new(a.F32 + ic * lda + pc, lda, lda, 1);

        /// <summary>Panels of op(A)[ic..ic+mc, pc..pc+kc], packed into pa first unless DirectA.</summary>
        APanels PanelsOfA(float* pa, int ic, int mc, int pc, int kc)
        {
            if (!DirectA) PackA(pa, ic, mc, pc, kc);
            return Panels(pa, ic, pc, kc);
        }

        // On several cores, about two tasks per thread (whole micro-tiles each, so one slow shared core does not hold
        // the rest up) split the longer side of C. The operand they all read (B when the rows are split, A when the
        // columns are) is packed once, into a buffer they share, one step at a time: a depth slab of up to SharedWidth
        // columns of B, or of MC rows of A. While the tasks multiply by one step's panels, each also packs its part of
        // the next step's into the other half of the buffer, so packing costs no extra pass over the cores.

        /// <summary>All of C on several cores: the tasks split its rows and share B's panels (rows), or split its columns
        /// and share A's.</summary>
        public void RunShared(int threads, int m, int n, bool rows)
        {
            var self = this;
            int split = rows ? m : n, other = rows ? n : m;             // the tasks' side of C, and the shared operand's
            int unit = rows ? MR : _nr, sharedUnit = rows ? _nr : MR;   // whole micro-tiles along each
            int block = rows ? SharedWidth : MC;                         // the shared operand's extent in one step
            int span = RoundUp(CeilDiv(split, 2 * threads), unit), tasks = CeilDiv(split, span), slabs = CeilDiv(k, KC);
            long half = (long)KC * RoundUp(Math.Min(other, block), sharedUnit);
            float* shared = Scratch.Current.Get(Scratch.SharedPanels, 2 * half);
            void Pack(int step, int t)   // task t's part of step's shared panels: whole micro-panels, in order
            {
                var (o0, width, pc, kc) = self.Step(step, slabs, other, block);
                int part = RoundUp(CeilDiv(width, tasks), sharedUnit), p0 = t * part;
                if (p0 >= width) return;
                float* dst = shared + step % 2 * half + (long)p0 * kc;
                if (rows) self.PackB(dst, pc, kc, o0 + p0, Math.Min(part, width - p0));
                else if (!self.DirectA) self.PackA(dst, o0 + p0, Math.Min(part, width - p0), pc, kc);
            }
            Cores.For(0, tasks, t => Pack(0, t));
            for (int s = 0, steps = CeilDiv(other, block) * slabs; s < steps; s++)
            {
                int step = s;
                var (o0, width, pc, kc) = Step(step, slabs, other, block);
                float* panels = shared + step % 2 * half;
                Cores.For(0, tasks, t =>
                {
                    if (step + 1 < steps) Pack(step + 1, t);
                    int s0 = t * span, s1 = Math.Min(split, s0 + span);
                    if (rows)   // this task's rows of A, by MC, against every shared B panel
                    {
                        float* pa = Scratch.Current.Get(Scratch.PackedA, (long)MC * KC);
                        for (int ic = s0; ic < s1; ic += MC)
                        {
                            int mc = Math.Min(MC, s1 - ic);
                            var ap = self.PanelsOfA(pa, ic, mc, pc, kc);
                            for (int jc = 0; jc < width; jc += NC)
                                self.Block(ap, new StridedB(panels + (long)jc * kc, self._nr, kc), ic, mc, pc, kc, o0 + jc, Math.Min(NC, width - jc));
                        }
                    }
                    else        // this task's columns of B, by NC, against the shared A panels
                    {
                        float* pb = Scratch.Current.Get(Scratch.PackedB, (long)KC * NC);
                        for (int jc = s0; jc < s1; jc += NC)
                        {
                            int nc = Math.Min(NC, s1 - jc);
                            var ap = self.Panels(panels, o0, pc, kc);
                            if (self.BPointed) { self.Block(ap, self.PointedAt(pc, jc), o0, width, pc, kc, jc, nc); continue; }
                            self.PackB(pb, pc, kc, jc, nc);
                            self.Block(ap, new StridedB(pb, self._nr, kc), o0, width, pc, kc, jc, nc);
                        }
                    }
                });
            }
        }

        /// <summary>A shared step: the first of the `width` rows or columns of its block (blocks of `block` along a side
        /// of `size`), and its depth slab; the slabs of a block come in order, so each element's sum order is Run's.</summary>
        (int Start, int Width, int Pc, int Kc) Step(int step, int slabs, int size, int block)
        {
            int start = step / slabs * block, pc = step % slabs * KC;
            return (start, Math.Min(block, size - start), pc, Math.Min(KC, k - pc));
        }

        /// <summary>C[ic..ic+mc, jc..jc+nc] += the product of one depth slab (pc, kc): pa gives those rows of op(A) (packed
        /// or in place), pb those columns of op(B) (packed, B's own rows ldb apart, or rows at pointers). The first slab
        /// applies beta and the biases; later slabs add onto C.</summary>
        void Block<TB>(in APanels pa, TB pb, int ic, int mc, int pc, int kc, int jc, int nc) where TB : struct, IPanelB<TB>
        {
            int nrFull = _nr;
            var tail = new Tail(alpha, pc == 0 ? beta : 1f, pc == 0 ? colBias : null, pc == 0 ? rowBias : null);
            for (int ir = 0; ir < mc; ir += MR)
                for (int jr = 0; jr < nc; jr += nrFull)
                {
                    float* ct = c + (ic + ir) * ldc + jc + jr;
                    int mr = Math.Min(MR, mc - ir), nr = Math.Min(nrFull, nc - jr);
                    var t = tail.At(ic + ir, jc + jr);
                    float* ap = pa.Base + ir * pa.PerRow;
                    if (wide) Micro512(kc, ap, pa.Row, pa.Step, pb.Columns(jr), ct, ldc, mr, nr, t);
                    else Micro256(kc, ap, pa.Row, pa.Step, pb.Columns(jr), ct, ldc, mr, nr, t);
                }
        }

        /// <summary>op(A)[ic..ic+mc, pc..pc+kc] → micro-panels: panel r holds rows ic+r·MR.., element (i, p) at p·MR + i.
        /// Only a transposed A (beyond DirectA's sizes) or an f16/bf16 A is packed.</summary>
        void PackA(float* dst, int ic, int mc, int pc, int kc)
        {
            if (a.Direct) PackATransposed(dst, ic, mc, pc, kc);
            else PackAWidened(dst, ic, mc, pc, kc);
        }

        /// <summary>PackA of a transposed A (every weight gradient dyᵀ·x): column p of op(A) is row p of A, so each row is
        /// read once, in order, and dealt across the panels, 8 floats stored per panel where 6 belong (the extra two land
        /// in the next depth's slots, written after). Panel by panel, 6 floats from each of kc rows lda apart, it took a
        /// [512x4096]ᵀ·[4096x64] product 1.88 ms against 1.22 untransposed (2 cores, Xeon, 2026-12-05).</summary>
        void PackATransposed(float* dst, int ic, int mc, int pc, int kc)
        {
            const int Group = 8 * MR;   // columns of A per pass: 8 panels, 3 cache lines of each row
            int full = mc / MR * MR;
            if (full < mc) new Span<float>(dst + (long)full * kc, MR * kc).Clear();   // the zero-padded last panel
            for (int g0 = 0; g0 < mc; g0 += Group)
            {
                int g1 = Math.Min(mc, g0 + Group), gFull = Math.Min(g1, full);
                float* panels = dst + (long)g0 * kc;
                for (int p = 0; p < kc; p++)
                {
                    float* src = a.F32 + (pc + p) * lda + ic, d = panels + p * MR;
                    int ir = g0;
                    if (p + 1 < kc)
                        for (; ir + 8 <= gFull; ir += MR, d += MR * kc) Vector256.Store(Vector256.Load(src + ir), d);
                    for (; ir < gFull; ir += MR, d += MR * kc)
                        for (int r = 0; r < MR; r++) d[r] = src[ir + r];
                    for (int r = Math.Max(g0, full); r < g1; r++) d[r - full] = src[r];
                }
            }
        }

        /// <summary>op(B)[pc..pc+kc, jc..jc+nc] → micro-panels: panel holds columns jc+jr.., element (p, j) at p·NR + j.</summary>
        void PackB(float* dst, int pc, int kc, int jc, int nc)
        {
            if (!b.Direct && !b.Pointed) { PackBWidened(dst, pc, kc, jc, nc); return; }
            int nrFull = _nr;
            if (!transB)   // row p of op(B) is contiguous: each is read once, in order, and dealt across the panels
            {
                int full = nc / nrFull * nrFull;
                if (full < nc) new Span<float>(dst + full * kc, nrFull * kc).Clear();   // the zero-padded last panel
                for (int p = 0; p < kc; p++)
                {
                    float* src = RowOfB(pc + p) + jc;
                    if (p + RowsAhead < kc && Sse.IsSupported)   // short runs far apart: the hardware prefetcher lags
                        for (int j = 0; j < nc; j += 16) Sse.Prefetch0(RowOfB(pc + p + RowsAhead) + jc + j);
                    DealRow(dst + p * nrFull, src, kc, nc);
                }
                return;
            }
            // Column j of op(B) is contiguous: Count×Count blocks (16 or 8 lanes) are transposed in registers, the
            // ragged edges (past the last whole block of columns or of depth) copied one element at a time.
            for (int jr = 0; jr < nc; jr += nrFull, dst += nrFull * kc)
                TransposePanel(dst, b.F32 + (jc + jr) * ldb + pc, ldb, kc, Math.Min(nrFull, nc - jr));
        }

        bool BPointed => b.Pointed;

        /// <summary>B's rows from pc on, from column jc on, where they are (Operand.RowPointers).</summary>
        PointedB PointedAt(int pc, int jc) => new(b.Table + pc, jc);

        /// <summary>Where row p of an untransposed f32 B starts.</summary>
        float* RowOfB(int p) => b.Pointed ? b.Table[p] : b.F32 + p * ldb;

        /// <summary>A row of op(B) (nc floats at src) dealt across the panels: d is its place in the first one.</summary>
        void DealRow(float* d, float* src, int kc, int nc)
        {
            int nrFull = _nr, full = nc / nrFull * nrFull, jr = 0;
            for (; jr < full; jr += nrFull, d += nrFull * kc)
                for (int j = 0; j < nrFull; j += 8) Vector256.Store(Vector256.Load(src + jr + j), d + j);
            for (int j = jr; j < nc; j++) d[j - jr] = src[j];
        }

        /// <summary>One panel from nr columns of op(B), each contiguous (kc long, ldb apart from the next).</summary>
        void TransposePanel(float* dst, float* src, long ldb, int kc, int nr)
        {
            int nrFull = _nr, lanes = wide ? V512.Count : V256.Count;
            bool shuffles = wide ? V512.HasShuffles : V256.HasShuffles;
            if (nr < nrFull) new Span<float>(dst, nrFull * kc).Clear();
            int blockCols = shuffles ? nr / lanes * lanes : 0, blockDepth = shuffles ? kc / lanes * lanes : 0;
            for (int j0 = 0; j0 < blockCols; j0 += lanes)
                for (int p0 = 0; p0 < blockDepth; p0 += lanes)
                    if (wide) V512.TransposeBlock(dst + p0 * nrFull + j0, nrFull, src + j0 * ldb + p0, ldb, 1f);
                    else V256.TransposeBlock(dst + p0 * nrFull + j0, nrFull, src + j0 * ldb + p0, ldb, 1f);
            for (int p = 0; p < kc; p++)
            {
                float* d = dst + p * nrFull;
                for (int j = p < blockDepth ? blockCols : 0; j < nr; j++) d[j] = src[j * ldb + p];
            }
        }

        /// <summary>PackA of an f16/bf16 A: each contiguous run (a row of op(A), or with transA a row of A covering all
        /// mc rows of op(A)) is widened into a line, then dealt into the micro-panels.</summary>
        void PackAWidened(float* dst, int ic, int mc, int pc, int kc)
        {
            float* line = stackalloc float[Math.Max(MC, KC)];
            if (mc % MR != 0) new Span<float>(dst + mc / MR * MR * kc, MR * kc).Clear();   // the zero-padded last panel
            if (!transA)
                for (int i = 0; i < mc; i++)
                {
                    a.At((ic + i) * lda + pc).Widen(line, kc);
                    float* d = dst + i / MR * MR * kc + i % MR;
                    for (int p = 0; p < kc; p++) d[p * MR] = line[p];
                }
            else
                for (int p = 0; p < kc; p++)
                {
                    a.At((pc + p) * lda + ic).Widen(line, mc);
                    for (int i = 0; i < mc; i++) dst[i / MR * MR * kc + p * MR + i % MR] = line[i];
                }
        }

        /// <summary>PackB of a B that is not f32 in memory. Computed (Operand.Computed): each row of op(B) is made into a
        /// line, then dealt across the panels; with transB a panel's columns are made into a block, then transposed.
        /// f16/bf16: a row of op(B) is widened straight into its panel row; with transB each column of op(B) is widened
        /// into a line, then spread down the panel.</summary>
        void PackBWidened(float* dst, int pc, int kc, int jc, int nc)
        {
            int nrFull = _nr;
            if (b.Type == DType.F32)   // computed: a whole row of op(B) into a line, dealt across the panels; with transB
            {                          // a panel's columns into a block, transposed
                float* block = Scratch.Current.Get(Scratch.ComputedRows, Math.Max(nc, nrFull * kc));
                if (!transB)
                {
                    int full = nc / nrFull * nrFull;
                    if (full < nc) new Span<float>(dst + full * kc, nrFull * kc).Clear();
                    for (int p = 0; p < kc; p++)
                    {
                        b.At((pc + p) * ldb + jc).Widen(block, nc);
                        DealRow(dst + p * nrFull, block, kc, nc);
                    }
                    return;
                }
                for (int jr = 0; jr < nc; jr += nrFull, dst += nrFull * kc)
                {
                    int nr = Math.Min(nrFull, nc - jr);
                    for (int j = 0; j < nr; j++) b.At((jc + jr + j) * ldb + pc).Widen(block + j * kc, kc);
                    TransposePanel(dst, block, kc, kc, nr);
                }
                return;
            }
            float* line = stackalloc float[KC];
            for (int jr = 0; jr < nc; jr += nrFull, dst += nrFull * kc)
            {
                int nr = Math.Min(nrFull, nc - jr);
                if (nr < nrFull) new Span<float>(dst, nrFull * kc).Clear();
                if (!transB)
                    for (int p = 0; p < kc; p++) b.At((pc + p) * ldb + jc + jr).Widen(dst + p * nrFull, nr);
                else
                    for (int j = 0; j < nr; j++)
                    {
                        b.At((jc + jr + j) * ldb + pc).Widen(line, kc);
                        for (int p = 0; p < kc; p++) dst[p * nrFull + j] = line[p];
                    }
            }
        }
    }

    /// <summary>Where the micro-kernel reads op(A): the panel of block rows ir.. starts at Base + ir·PerRow, and holds element
    /// (i, p) at i·Row + p·Step. Packed: PerRow kc, Row 1, Step MR. In place (DirectA): PerRow = Row = lda, Step 1.</summary>
    readonly struct APanels(float* @base, long perRow, long row, long step)
    {
        public readonly float* Base = @base;
        public readonly long PerRow = perRow, Row = row, Step = step;
    }

    /// <summary>A GEMM input: f32 elements, f16/bf16 bits widened to f32 while packing, or rows computed while packing
    /// (Computed). A float* converts implicitly.</summary>
    internal readonly struct Operand
    {
        readonly void* _data;
        readonly delegate*<void*, long, float*, int, void> _rows;   // computed: rows(state, offset, dst, count)
        readonly long _offset;
        public readonly DType Type;
        /// <summary>Rows at pointers (RowPointers): _data is the table.</summary>
        public readonly bool Pointed;

        public Operand(void* data, DType type) { _data = data; Type = type; }

        Operand(float** table) { _data = table; Type = DType.F32; Pointed = true; }

        Operand(void* state, delegate*<void*, long, float*, int, void> rows, long offset)
        {
            _data = state; _rows = rows; _offset = offset; Type = DType.F32;
        }

        public float* F32 => (float*)_data;
        public float** Table => (float**)_data;

        /// <summary>f32 elements in memory, read as they are; otherwise packing goes through Widen.</summary>
        public bool Direct => Type == DType.F32 && _rows == null && !Pointed;

        public static implicit operator Operand(float* data) => new(data, DType.F32);

        /// <summary>An operand never stored: rows(state, offset, dst, count) writes the count elements from element
        /// offset (row·ld + column of the matrix it stands for) into dst. The conv's columns (CpuBackend.Im2Col).</summary>
        public static Operand Computed(void* state, delegate*<void*, long, float*, int, void> rows) => new(state, rows, 0);

        /// <summary>An untransposed f32 B whose row p starts at table[p] (ld unused): rows anywhere in memory, read in
        /// place by the micro-kernel (packed only where the tasks split C's rows), each readable for n rounded up to whole
        /// micro-panels of 64. Never split along the depth. The conv's shifted input rows (CpuBackend.Conv2dByShifts).</summary>
        public static Operand RowPointers(float** table) => new(table);

        /// <summary>The operand from element offset on.</summary>
        public Operand At(long offset) =>
            _rows != null ? new(_data, _rows, _offset + offset) : new((byte*)_data + offset * Type.Size(), Type);

        /// <summary>dst[0..count) = the first count elements as f32 (exact).</summary>
        public void Widen(float* dst, int count)
        {
            if (_rows != null) _rows(_data, _offset, dst, count);
            else CpuBackend.CastRange((byte*)dst, DType.F32, (byte*)_data, Type, 0, count);
        }
    }

    /// <summary>How a micro-tile lands in C: C = alpha·acc + beta·C (C not read when beta is 0) + colBias[j] + rowBias[i].
    /// The bias pointers are null when absent, and point at the tile's first column / row after At.</summary>
    readonly struct Tail(float alpha, float beta, float* colBias, float* rowBias)
    {
        public readonly float Alpha = alpha, Beta = beta;
        public readonly float* ColBias = colBias, RowBias = rowBias;

        public Tail At(int i, int j) => new(Alpha, Beta, ColBias == null ? null : ColBias + j, RowBias == null ? null : RowBias + i);

        /// <summary>Scalar landing of an edge tile from acc (rows of width stride).</summary>
        public void Edge(float* c, long ldc, float* acc, int stride, int m, int n)
        {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float v = Alpha * acc[i * stride + j];
                    if (Beta != 0) v += Beta * c[i * ldc + j];
                    if (ColBias != null) v += ColBias[j];
                    if (RowBias != null) v += RowBias[i];
                    c[i * ldc + j] = v;
                }
        }
    }

    /// <summary>How a micro-kernel walks down the depth of B's micro-panel: Columns(jr) is the panel from column jr of the
    /// block on; each Next gives the next row's first element.</summary>
    internal interface IPanelB<TB> where TB : struct, IPanelB<TB>
    {
        TB Columns(int jr);
        float* Next();
    }

    /// <summary>Rows `step` apart: a packed block (step NR, each panel `panel` rows long) or B in place (step ldb, panel 1).</summary>
    struct StridedB(float* b, long step, long panel) : IPanelB<StridedB>
    {
        float* _b = b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public readonly StridedB Columns(int jr) => new(_b + jr * panel, step, panel);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Next()
        {
            float* r = _b;
            _b += step;
            return r;
        }
    }

    /// <summary>Row p at rows[p] + column (Operand.RowPointers).</summary>
    struct PointedB(float** rows, long column) : IPanelB<PointedB>
    {
        float** _rows = rows;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public readonly PointedB Columns(int jr) => new(_rows, column + jr);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public float* Next() => *_rows++ + column;
    }

    // ---- micro-kernels: C[6, NR] += Σ_p a[i·aRow + p·aStep] · b_p[j] (A packed or in place, APanels; b_p the row
    // rows.Next() gives: packed, in place ldb apart, or at a pointer, IPanelB), accumulators in registers. Rows past m read row m − 1 (their sums are not stored), so A's
    // own rows are never read past the block. ----

    /// <summary>Asks for the C tile's lines before the depth loop, so they arrive while it runs instead of stalling the
    /// landing: C is read (beta, later depth slabs) and written once per KC of depth, and its rows are far apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchTile(float* c, long ldc, int m, int n)
    {
        if (!Sse.IsSupported) return;
        for (int i = 0; i < m; i++, c += ldc)
        {
            for (int j = 0; j < n; j += 16) Sse.Prefetch0(c + j);
            Sse.Prefetch0(c + n - 1);   // the row's last line, when C is not line-aligned
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Micro512<TB>(int kc, float* a, long aRow, long aStep, TB rows, float* c, long ldc, int m, int n, in Tail t)
        where TB : struct, IPanelB<TB>
    {
        long r1 = Math.Min(1, m - 1) * aRow, r2 = Math.Min(2, m - 1) * aRow, r3 = Math.Min(3, m - 1) * aRow;
        long r4 = Math.Min(4, m - 1) * aRow, r5 = Math.Min(5, m - 1) * aRow;
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        Vector512<float> c40 = default, c41 = default, c42 = default, c43 = default;
        Vector512<float> c50 = default, c51 = default, c52 = default, c53 = default;
        PrefetchTile(c, ldc, m, 64);
        for (int p = 0; p < kc; p++, a += aStep)
        {
            float* b = rows.Next();
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var b2 = Vector512.Load(b + 32);
            var b3 = Vector512.Load(b + 48);
            var s = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(s, b0, c00); c01 = Vector512.FusedMultiplyAdd(s, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(s, b2, c02); c03 = Vector512.FusedMultiplyAdd(s, b3, c03);
            s = Vector512.Create(a[r1]);
            c10 = Vector512.FusedMultiplyAdd(s, b0, c10); c11 = Vector512.FusedMultiplyAdd(s, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(s, b2, c12); c13 = Vector512.FusedMultiplyAdd(s, b3, c13);
            s = Vector512.Create(a[r2]);
            c20 = Vector512.FusedMultiplyAdd(s, b0, c20); c21 = Vector512.FusedMultiplyAdd(s, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(s, b2, c22); c23 = Vector512.FusedMultiplyAdd(s, b3, c23);
            s = Vector512.Create(a[r3]);
            c30 = Vector512.FusedMultiplyAdd(s, b0, c30); c31 = Vector512.FusedMultiplyAdd(s, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(s, b2, c32); c33 = Vector512.FusedMultiplyAdd(s, b3, c33);
            s = Vector512.Create(a[r4]);
            c40 = Vector512.FusedMultiplyAdd(s, b0, c40); c41 = Vector512.FusedMultiplyAdd(s, b1, c41);
            c42 = Vector512.FusedMultiplyAdd(s, b2, c42); c43 = Vector512.FusedMultiplyAdd(s, b3, c43);
            s = Vector512.Create(a[r5]);
            c50 = Vector512.FusedMultiplyAdd(s, b0, c50); c51 = Vector512.FusedMultiplyAdd(s, b1, c51);
            c52 = Vector512.FusedMultiplyAdd(s, b2, c52); c53 = Vector512.FusedMultiplyAdd(s, b3, c53);
        }
        if (n == 64)   // whole rows: each of the m lands in vectors
        {
            Land512(c, c00, c01, c02, c03, t, 0);
            if (m > 1) Land512(c + ldc, c10, c11, c12, c13, t, 1);
            if (m > 2) Land512(c + 2 * ldc, c20, c21, c22, c23, t, 2);
            if (m > 3) Land512(c + 3 * ldc, c30, c31, c32, c33, t, 3);
            if (m > 4) Land512(c + 4 * ldc, c40, c41, c42, c43, t, 4);
            if (m > 5) Land512(c + 5 * ldc, c50, c51, c52, c53, t, 5);
            return;
        }
        float* acc = stackalloc float[MR * 64];
        c00.Store(acc); c01.Store(acc + 16); c02.Store(acc + 32); c03.Store(acc + 48);
        c10.Store(acc + 64); c11.Store(acc + 80); c12.Store(acc + 96); c13.Store(acc + 112);
        c20.Store(acc + 128); c21.Store(acc + 144); c22.Store(acc + 160); c23.Store(acc + 176);
        c30.Store(acc + 192); c31.Store(acc + 208); c32.Store(acc + 224); c33.Store(acc + 240);
        c40.Store(acc + 256); c41.Store(acc + 272); c42.Store(acc + 288); c43.Store(acc + 304);
        c50.Store(acc + 320); c51.Store(acc + 336); c52.Store(acc + 352); c53.Store(acc + 368);
        t.Edge(c, ldc, acc, 64, m, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Land512(float* c, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, in Tail t, int row)
    {
        var alpha = Vector512.Create(t.Alpha);
        x0 *= alpha; x1 *= alpha; x2 *= alpha; x3 *= alpha;
        if (t.Beta != 0)
        {
            var beta = Vector512.Create(t.Beta);
            x0 = Vector512.FusedMultiplyAdd(beta, Vector512.Load(c), x0);
            x1 = Vector512.FusedMultiplyAdd(beta, Vector512.Load(c + 16), x1);
            x2 = Vector512.FusedMultiplyAdd(beta, Vector512.Load(c + 32), x2);
            x3 = Vector512.FusedMultiplyAdd(beta, Vector512.Load(c + 48), x3);
        }
        if (t.ColBias != null)
        {
            x0 += Vector512.Load(t.ColBias); x1 += Vector512.Load(t.ColBias + 16);
            x2 += Vector512.Load(t.ColBias + 32); x3 += Vector512.Load(t.ColBias + 48);
        }
        if (t.RowBias != null)
        {
            var r = Vector512.Create(t.RowBias[row]);
            x0 += r; x1 += r; x2 += r; x3 += r;
        }
        x0.Store(c); x1.Store(c + 16); x2.Store(c + 32); x3.Store(c + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Micro256<TB>(int kc, float* a, long aRow, long aStep, TB rows, float* c, long ldc, int m, int n, in Tail t)
        where TB : struct, IPanelB<TB>
    {
        long r1 = Math.Min(1, m - 1) * aRow, r2 = Math.Min(2, m - 1) * aRow, r3 = Math.Min(3, m - 1) * aRow;
        long r4 = Math.Min(4, m - 1) * aRow, r5 = Math.Min(5, m - 1) * aRow;
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        PrefetchTile(c, ldc, m, 16);
        for (int p = 0; p < kc; p++, a += aStep)
        {
            float* b = rows.Next();
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var s = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(s, b0, c00); c01 = Vector256.FusedMultiplyAdd(s, b1, c01);
            s = Vector256.Create(a[r1]);
            c10 = Vector256.FusedMultiplyAdd(s, b0, c10); c11 = Vector256.FusedMultiplyAdd(s, b1, c11);
            s = Vector256.Create(a[r2]);
            c20 = Vector256.FusedMultiplyAdd(s, b0, c20); c21 = Vector256.FusedMultiplyAdd(s, b1, c21);
            s = Vector256.Create(a[r3]);
            c30 = Vector256.FusedMultiplyAdd(s, b0, c30); c31 = Vector256.FusedMultiplyAdd(s, b1, c31);
            s = Vector256.Create(a[r4]);
            c40 = Vector256.FusedMultiplyAdd(s, b0, c40); c41 = Vector256.FusedMultiplyAdd(s, b1, c41);
            s = Vector256.Create(a[r5]);
            c50 = Vector256.FusedMultiplyAdd(s, b0, c50); c51 = Vector256.FusedMultiplyAdd(s, b1, c51);
        }
        if (n == 16)   // whole rows: each of the m lands in vectors
        {
            Land256(c, c00, c01, t, 0);
            if (m > 1) Land256(c + ldc, c10, c11, t, 1);
            if (m > 2) Land256(c + 2 * ldc, c20, c21, t, 2);
            if (m > 3) Land256(c + 3 * ldc, c30, c31, t, 3);
            if (m > 4) Land256(c + 4 * ldc, c40, c41, t, 4);
            if (m > 5) Land256(c + 5 * ldc, c50, c51, t, 5);
            return;
        }
        float* acc = stackalloc float[MR * 16];
        c00.Store(acc); c01.Store(acc + 8); c10.Store(acc + 16); c11.Store(acc + 24);
        c20.Store(acc + 32); c21.Store(acc + 40); c30.Store(acc + 48); c31.Store(acc + 56);
        c40.Store(acc + 64); c41.Store(acc + 72); c50.Store(acc + 80); c51.Store(acc + 88);
        t.Edge(c, ldc, acc, 16, m, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Land256(float* c, Vector256<float> x0, Vector256<float> x1, in Tail t, int row)
    {
        var alpha = Vector256.Create(t.Alpha);
        x0 *= alpha; x1 *= alpha;
        if (t.Beta != 0)
        {
            var beta = Vector256.Create(t.Beta);
            x0 = Vector256.FusedMultiplyAdd(beta, Vector256.Load(c), x0);
            x1 = Vector256.FusedMultiplyAdd(beta, Vector256.Load(c + 8), x1);
        }
        if (t.ColBias != null) { x0 += Vector256.Load(t.ColBias); x1 += Vector256.Load(t.ColBias + 8); }
        if (t.RowBias != null)
        {
            var r = Vector256.Create(t.RowBias[row]);
            x0 += r; x1 += r;
        }
        x0.Store(c); x1.Store(c + 8);
    }
}
