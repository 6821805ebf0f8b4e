package io.whittle.methods.wgsef;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A partition of one or more weight matrices into disjoint groups x_j (wgsef.md §1.1, §3.2), built from a
 * {@link GroupSpec} for concrete tensor names and shapes, with group ids computed by index arithmetic (§6) rather
 * than index arrays.
 *
 * <p>Every member matrix (rows x cols, row-major) is cut into tiles of {@code tileRows x tileCols}; the element
 * (i, c) belongs to group {@code (i / tileRows) * (cols / tileCols) + c / tileCols}. All members of a partition have
 * the same number of groups, and group j of the partition is the union of group j of every member (this is how
 * {@code mlp-channels} joins gate row j, up row j and down column j). Columns are tiles of rows x 1, rows 1 x cols,
 * heads head_dim x cols (q/k/v) or rows x head_dim (o_proj), blocks R x C and N:M singletons 1 x 1.
 *
 * <p>Groups are organised in <em>problems</em>: consecutive runs of {@link #problemSize()} groups, each an
 * independent WGSEF instance with its own level k. Every spec but N:M has one problem covering all groups; N:M has
 * one problem per block of M consecutive inputs of a row (§7), with level N.
 */
public final class GroupPartition {

    /** A weight matrix by name and shape (rows = output features, cols = input features). */
    public record Matrix(String name, int rows, int cols) {
        public Matrix {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException("matrix name is required");
            }
            if (rows < 1 || cols < 1) {
                throw new IllegalArgumentException("matrix '" + name + "' has an empty shape " + rows + " x " + cols);
            }
            Math.multiplyExact(rows, cols); // the engine's float[] views need rows * cols < 2^31
        }

        public int numel() {
            return rows * cols;
        }

        @Override
        public String toString() {
            return "'" + name + "' (" + rows + " x " + cols + ")";
        }
    }

    /** One member matrix and its tiling. */
    public record Member(Matrix matrix, int tileRows, int tileCols) {
        public int tilesPerRow() {
            return matrix.cols() / tileCols;
        }

        public int groupCount() {
            return (matrix.rows() / tileRows) * tilesPerRow();
        }

        public int groupOf(int row, int col) {
            return (row / tileRows) * tilesPerRow() + col / tileCols;
        }
    }

    private final String name;
    private final GroupSpec spec;
    private final List<Member> members;
    private final int groupCount;
    private final int problemSize;
    private final int groupSize;

    private GroupPartition(String name, GroupSpec spec, List<Member> members, int problemSize) {
        this.name = name;
        this.spec = spec;
        this.members = List.copyOf(members);
        this.groupCount = members.get(0).groupCount();
        for (Member m : members) {
            if (m.groupCount() != groupCount) {
                throw new IllegalArgumentException("groups=" + spec + ": members disagree on the group count");
            }
        }
        this.problemSize = problemSize;
        int size = 0;
        for (Member m : members) {
            size += m.tileRows() * m.tileCols();
        }
        this.groupSize = size;
    }

    /**
     * The partition of one matrix. {@code headDim} is used by {@code heads} only, which also needs the tensor name to
     * tell q/k/v_proj (head rows) from o_proj (head columns). {@code mlp-channels} spans three matrices: use
     * {@link #mlpChannels}.
     */
    public static GroupPartition of(GroupSpec spec, Matrix matrix, int headDim) {
        int rows = matrix.rows();
        int cols = matrix.cols();
        String where = "groups=" + spec + ": ";
        return switch (spec.kind()) {
            case COLUMNS -> single(spec, matrix, rows, 1);
            case ROWS -> single(spec, matrix, 1, cols);
            case HEADS -> {
                if (headDim < 1) {
                    throw new IllegalArgumentException(where + "head_dim must be >= 1, got " + headDim);
                }
                String n = matrix.name();
                if (n.contains("o_proj")) {
                    requireDivides(where, headDim, cols, "columns", matrix);
                    yield single(spec, matrix, rows, headDim);
                }
                if (n.contains("q_proj") || n.contains("k_proj") || n.contains("v_proj")) {
                    requireDivides(where, headDim, rows, "rows", matrix);
                    yield single(spec, matrix, headDim, cols);
                }
                throw new IllegalArgumentException(where + "applies to q_proj, k_proj, v_proj (head rows) and o_proj "
                        + "(head columns), not " + matrix);
            }
            case BLOCKS -> {
                requireDivides(where, spec.blockRows(), rows, "rows", matrix);
                requireDivides(where, spec.blockCols(), cols, "columns", matrix);
                yield single(spec, matrix, spec.blockRows(), spec.blockCols());
            }
            case NM -> {
                requireDivides(where, spec.m(), cols, "columns", matrix);
                yield new GroupPartition(matrix.name(), spec, List.of(new Member(matrix, 1, 1)), spec.m());
            }
            case MLP_CHANNELS -> throw new IllegalArgumentException(where + "spans gate, up and down projections; "
                    + "build it with GroupPartition.mlpChannels(gate, up, down), not for the single matrix " + matrix);
        };
    }

    /**
     * The {@code mlp-channels} partition of one SwiGLU MLP or expert: group j is gate row j, up row j and down
     * column j. Gate and up must be I x h and down h x I.
     */
    public static GroupPartition mlpChannels(Matrix gate, Matrix up, Matrix down) {
        String where = "groups=mlp-channels: ";
        if (gate.rows() != up.rows() || gate.cols() != up.cols()) {
            throw new IllegalArgumentException(where + "gate " + gate + " and up " + up + " must have the same shape");
        }
        if (down.cols() != gate.rows() || down.rows() != gate.cols()) {
            throw new IllegalArgumentException(where + "down " + down + " must be the transpose shape of gate " + gate);
        }
        List<Member> members = new ArrayList<>();
        members.add(new Member(gate, 1, gate.cols()));
        members.add(new Member(up, 1, up.cols()));
        members.add(new Member(down, down.rows(), 1));
        String name = commonPrefix(gate.name(), down.name());
        return new GroupPartition(name.isEmpty() ? gate.name() : name, GroupSpec.of(GroupSpec.Kind.MLP_CHANNELS), members,
                gate.rows());
    }

    private static GroupPartition single(GroupSpec spec, Matrix matrix, int tileRows, int tileCols) {
        Member m = new Member(matrix, tileRows, tileCols);
        return new GroupPartition(matrix.name(), spec, List.of(m), m.groupCount());
    }

    private static void requireDivides(String where, int size, int extent, String what, Matrix matrix) {
        if (size > extent || extent % size != 0) {
            throw new IllegalArgumentException(where + size + " does not divide the " + extent + " " + what + " of " + matrix);
        }
    }

    private static String commonPrefix(String a, String b) {
        int n = Math.min(a.length(), b.length());
        int i = 0;
        while (i < n && a.charAt(i) == b.charAt(i)) {
            i++;
        }
        return a.substring(0, i);
    }

    /** The level k per problem for a {@code keep} parameter; {@code nm:N:M} fixes k = N and takes no keep. */
    public int level(Keep keep) {
        if (spec.kind() == GroupSpec.Kind.NM) {
            if (keep != null) {
                throw new IllegalArgumentException("keep: does not apply to groups=" + spec
                        + " (the pattern keeps N of every M inputs); leave keep unset");
            }
            return spec.n();
        }
        if (keep == null) {
            throw new IllegalArgumentException("keep: required for groups=" + spec);
        }
        return keep.of(problemSize, describe());
    }

    /** The tensor name (or the common name prefix of an MLP's three tensors). */
    public String name() {
        return name;
    }

    public GroupSpec spec() {
        return spec;
    }

    public List<Member> members() {
        return members;
    }

    /** Total number of groups over all problems. */
    public int groupCount() {
        return groupCount;
    }

    /** Groups per independent problem. */
    public int problemSize() {
        return problemSize;
    }

    public int problems() {
        return groupCount / problemSize;
    }

    /** Parameters per group, summed over the members. */
    public int groupSize() {
        return groupSize;
    }

    /** True for N:M: many small problems over singleton groups of one matrix, processed block by block. */
    boolean isBlockwise() {
        return problems() > 1;
    }

    String describe() {
        List<String> names = new ArrayList<>();
        for (Member m : members) {
            names.add(m.matrix().toString());
        }
        return String.join(" + ", names) + " under groups=" + spec;
    }

    /** Checks that {@code data} holds one array per member with the member's element count. */
    void checkData(List<float[]> data) {
        if (data == null || data.size() != members.size()) {
            throw new IllegalArgumentException(name + ": expected " + members.size() + " matrices for groups=" + spec
                    + ", got " + (data == null ? 0 : data.size()));
        }
        for (int i = 0; i < members.size(); i++) {
            Matrix m = members.get(i).matrix();
            if (data.get(i) == null || data.get(i).length != m.numel()) {
                throw new IllegalArgumentException(m + ": expected " + m.numel() + " values, got "
                        + (data.get(i) == null ? "null" : data.get(i).length));
            }
        }
    }

    /**
     * The group norms a_j = ||x_j||_2 of every group, accumulated in FP64 (§6 K1). For N:M this is one value per
     * element; the N:M operators work block by block instead and never build this array.
     */
    public double[] groupNorms(List<float[]> data) {
        checkData(data);
        double[] sq = new double[groupCount];
        for (int i = 0; i < members.size(); i++) {
            accumulateSquares(members.get(i), data.get(i), sq);
        }
        for (int j = 0; j < sq.length; j++) {
            sq[j] = Math.sqrt(sq[j]);
        }
        return sq;
    }

    private static void accumulateSquares(Member mem, float[] x, double[] acc) {
        int rows = mem.matrix().rows();
        int cols = mem.matrix().cols();
        int tc = mem.tileCols();
        int tpr = mem.tilesPerRow();
        for (int r = 0; r < rows; r++) {
            int base = (r / mem.tileRows()) * tpr;
            int off = r * cols;
            if (tc == 1) {
                for (int c = 0; c < cols; c++) {
                    double v = x[off + c];
                    acc[base + c] += v * v;
                }
            } else {
                for (int t = 0; t < tpr; t++) {
                    double s = 0;
                    int from = off + t * tc;
                    for (int c = from; c < from + tc; c++) {
                        double v = x[c];
                        s += v * v;
                    }
                    acc[base + t] += s;
                }
            }
        }
    }

    /** Multiplies every element of group j by {@code scale[j]} (§6 K3), in place. */
    public void scaleGroups(double[] scale, List<float[]> data) {
        checkData(data);
        if (scale.length != groupCount) {
            throw new IllegalArgumentException(name + ": expected " + groupCount + " scales, got " + scale.length);
        }
        // fp32 scales: the pass is a plain vectorisable float multiply (one extra rounding, <= 2^-24 relative)
        float[] fs = new float[groupCount];
        for (int j = 0; j < groupCount; j++) {
            fs[j] = (float) scale[j];
        }
        for (int i = 0; i < members.size(); i++) {
            Member mem = members.get(i);
            float[] x = data.get(i);
            int rows = mem.matrix().rows();
            int cols = mem.matrix().cols();
            int tc = mem.tileCols();
            int tpr = mem.tilesPerRow();
            for (int r = 0; r < rows; r++) {
                int base = (r / mem.tileRows()) * tpr;
                int off = r * cols;
                if (tc == 1) {
                    for (int c = 0; c < cols; c++) {
                        x[off + c] *= fs[base + c];
                    }
                } else {
                    for (int t = 0; t < tpr; t++) {
                        float s = fs[base + t];
                        int from = off + t * tc;
                        for (int c = from; c < from + tc; c++) {
                            x[c] *= s;
                        }
                    }
                }
            }
        }
    }

    /** Zeroes every group not in {@code kept}, in place. */
    public void zeroUnkept(BitSet kept, List<float[]> data) {
        checkData(data);
        if (isSingletons()) {
            float[] x = data.get(0);
            for (int j = 0; j < x.length; j++) {
                if (!kept.get(j)) {
                    x[j] = 0f;
                }
            }
            return;
        }
        double[] scale = new double[groupCount];
        for (int j = kept.nextSetBit(0); j >= 0 && j < groupCount; j = kept.nextSetBit(j + 1)) {
            scale[j] = 1;
        }
        scaleGroups(scale, data);
    }

    /** Number of groups with a non-zero element. */
    public int nonzeroGroups(List<float[]> data) {
        checkData(data);
        int n = 0;
        if (isSingletons()) {
            for (float v : data.get(0)) {
                if (v != 0f) {
                    n++;
                }
            }
            return n;
        }
        for (double a : groupNorms(data)) {
            if (a > 0) {
                n++;
            }
        }
        return n;
    }

    /** One member cut into 1 x 1 tiles: group j is element j. */
    boolean isSingletons() {
        return members.size() == 1 && members.get(0).tileRows() == 1 && members.get(0).tileCols() == 1;
    }

    @Override
    public String toString() {
        return "GroupPartition[" + describe() + ", " + groupCount + " groups in " + problems() + " problem(s)]";
    }
}
