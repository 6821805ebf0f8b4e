package io.whittle.methods.camera.quant;

import io.whittle.model.Checkpoint;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Whittle's own mixed-precision format, {@code whittle-packed-v1}, for CAMERA-Q experts; the layout is specified in
 * {@code src/main/resources/formats/whittle-packed-v1.md}. In short, per expert {@code E} with permutation order
 * {@code perm} (sorted position to original micro-expert) and S non-empty width slices:
 * <pre>
 * E.camera_perm            I32 [f]
 * E.camera_slice_bits      I32 [S]        strictly decreasing
 * E.camera_slice_offsets   I32 [S + 1]    0 .. f, in sorted order
 * E.&lt;proj&gt;.weight_shape    I64 [2]        the original [out, in]
 * E.&lt;proj&gt;.q&lt;b&gt;.packed     U8  [ceil(n * b / 8)]   bit stream of the slice's codes ({@link BitPacking#packBitstream})
 * E.&lt;proj&gt;.q&lt;b&gt;.scale      F16 [rows_s, groups_s]
 * E.&lt;proj&gt;.q&lt;b&gt;.zero       F16 [rows_s, groups_s]  integer zero points, asymmetric only
 * </pre>
 * Row projections (W_gate/W_up) slice rows, column projections (W_down) slice columns; groups restart in every
 * slice. The scheme (format, group size, symmetry, widths) is in each shard's {@code __metadata__}
 * ({@link #metadata}). The reader returns exact fp32 weights in the original micro-expert order.
 */
public final class PackedFormat {

    public static final String FORMAT = "whittle-packed-v1";
    public static final String META_FORMAT = "whittle.format";
    public static final String META_METHOD = "whittle.method";
    public static final String META_GROUP_SIZE = "whittle.group_size";
    public static final String META_SYMMETRIC = "whittle.symmetric";
    public static final String META_BITS = "whittle.bits";
    public static final String META_FRACTIONS = "whittle.fractions";
    public static final String META_QUANTIZER = "whittle.quantizer";
    public static final String META_SCALE_DTYPE = "whittle.scale_dtype";
    public static final String META_ZERO_DTYPE = "whittle.zero_dtype";
    public static final String META_ROW_PROJECTIONS = "whittle.row_projections";
    public static final String META_COLUMN_PROJECTIONS = "whittle.column_projections";

    static final String PERM = ".camera_perm";
    static final String SLICE_BITS = ".camera_slice_bits";
    static final String SLICE_OFFSETS = ".camera_slice_offsets";

    private PackedFormat() {
    }

    /** The scheme as stored in {@code __metadata__}. */
    public record Header(int groupSize, boolean symmetric, int[] bits, double[] fractions, String quantizer,
                         List<String> rowProjections, List<String> columnProjections) {
    }

    /**
     * {@code __metadata__} entries for every shard holding packed experts (string values, as safetensors requires).
     *
     * @param rowProjections    projection names whose rows are micro-experts (e.g. gate_proj, up_proj)
     * @param columnProjections projection names whose columns are micro-experts (e.g. down_proj)
     */
    public static Map<String, String> metadata(int groupSize, boolean symmetric, BitAllocation allocation, String quantizer,
                                               List<String> rowProjections, List<String> columnProjections) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("format", "pt");
        m.put(META_FORMAT, FORMAT);
        m.put(META_METHOD, "camera-q");
        m.put(META_GROUP_SIZE, Integer.toString(groupSize));
        m.put(META_SYMMETRIC, Boolean.toString(symmetric));
        m.put(META_BITS, join(allocation.bits()));
        m.put(META_FRACTIONS, join(allocation.fractions()));
        m.put(META_QUANTIZER, quantizer);
        m.put(META_SCALE_DTYPE, DType.F16.safetensorsName());
        m.put(META_ZERO_DTYPE, symmetric ? "none" : DType.F16.safetensorsName());
        m.put(META_ROW_PROJECTIONS, String.join(",", rowProjections));
        m.put(META_COLUMN_PROJECTIONS, String.join(",", columnProjections));
        return m;
    }

    /** Parses and checks the metadata of a shard; throws when it does not describe this format. */
    public static Header header(Map<String, String> metadata) {
        String format = metadata.get(META_FORMAT);
        if (!FORMAT.equals(format)) {
            throw new IllegalArgumentException("not a " + FORMAT + " shard: " + META_FORMAT + " is " + format);
        }
        if (!DType.F16.safetensorsName().equals(metadata.get(META_SCALE_DTYPE))) {
            throw new IllegalArgumentException(FORMAT + " stores F16 scales, metadata says " + metadata.get(META_SCALE_DTYPE));
        }
        int g = Integer.parseInt(required(metadata, META_GROUP_SIZE));
        boolean sym = Boolean.parseBoolean(required(metadata, META_SYMMETRIC));
        int[] bits = Arrays.stream(required(metadata, META_BITS).split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
        String fr = metadata.getOrDefault(META_FRACTIONS, "");
        double[] fractions = fr.isEmpty() ? new double[0] : Arrays.stream(fr.split(",")).mapToDouble(Double::parseDouble).toArray();
        return new Header(g, sym, bits, fractions, metadata.getOrDefault(META_QUANTIZER, ""),
                split(metadata.getOrDefault(META_ROW_PROJECTIONS, "")), split(metadata.getOrDefault(META_COLUMN_PROJECTIONS, "")));
    }

    /** The tensors of one expert (the caller writes them with {@link #metadata} in the shard header). */
    public static List<TensorSource> write(String expertPrefix, QuantizedExpert expert) {
        MicroExpertPermutation p = expert.permutation();
        int[] offsets = p.sliceOffsets();
        int[] sliceBits = p.sliceBits();
        List<TensorSource> out = new ArrayList<>();
        out.add(TensorBytes.ints(expertPrefix + PERM, Shape.of(p.size()), p.order()));
        out.add(TensorBytes.ints(expertPrefix + SLICE_BITS, Shape.of(sliceBits.length), sliceBits));
        out.add(TensorBytes.ints(expertPrefix + SLICE_OFFSETS, Shape.of(offsets.length), offsets));
        for (var e : expert.rowProjections().entrySet()) {
            QuantizedMatrix m = requireF16(expertPrefix, e.getKey(), e.getValue());
            String base = expertPrefix + "." + e.getKey();
            out.add(TensorBytes.longs(base + ".weight_shape", Shape.of(2), new long[]{m.rows(), m.cols()}));
            int cols = m.cols();
            int groups = m.layout().groupCount();
            byte[] q = m.codes();
            float[] scales = m.scales();
            byte[] zeros = m.zeros();
            for (int s = 0; s < sliceBits.length; s++) {
                int r0 = offsets[s];
                int n = offsets[s + 1] - r0;
                String sb = base + ".q" + sliceBits[s];
                out.add(TensorSource.ofBytes(sb + ".packed", DType.U8, Shape.of(BitPacking.streamBytes((long) n * cols, sliceBits[s])),
                        BitPacking.packBitstream(q, r0 * cols, n * cols, sliceBits[s])));
                out.add(TensorBytes.floats(sb + ".scale", DType.F16, Shape.of(n, groups),
                        Arrays.copyOfRange(scales, r0 * groups, (r0 + n) * groups)));
                if (zeros != null) {
                    out.add(TensorBytes.floats(sb + ".zero", DType.F16, Shape.of(n, groups),
                            toFloats(Arrays.copyOfRange(zeros, r0 * groups, (r0 + n) * groups))));
                }
            }
        }
        for (var e : expert.columnProjections().entrySet()) {
            QuantizedMatrix m = requireF16(expertPrefix, e.getKey(), e.getValue());
            QuantLayout l = m.layout();
            String base = expertPrefix + "." + e.getKey();
            int rows = m.rows();
            int cols = m.cols();
            int groups = l.groupCount();
            out.add(TensorBytes.longs(base + ".weight_shape", Shape.of(2), new long[]{rows, cols}));
            byte[] q = m.codes();
            float[] scales = m.scales();
            byte[] zeros = m.zeros();
            for (int s = 0; s < sliceBits.length; s++) {
                int c0 = offsets[s];
                int n = offsets[s + 1] - c0;
                int g0 = l.groupOfColumn(c0);
                int gn = l.groupOfColumn(offsets[s + 1] - 1) + 1 - g0;
                byte[] sliceQ = new byte[rows * n];
                float[] sliceScales = new float[rows * gn];
                float[] sliceZeros = zeros == null ? null : new float[rows * gn];
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(q, r * cols + c0, sliceQ, r * n, n);
                    System.arraycopy(scales, r * groups + g0, sliceScales, r * gn, gn);
                    if (zeros != null) {
                        for (int g = 0; g < gn; g++) {
                            sliceZeros[r * gn + g] = zeros[r * groups + g0 + g];
                        }
                    }
                }
                String sb = base + ".q" + sliceBits[s];
                out.add(TensorSource.ofBytes(sb + ".packed", DType.U8, Shape.of(BitPacking.streamBytes((long) rows * n, sliceBits[s])),
                        BitPacking.packBitstream(sliceQ, 0, rows * n, sliceBits[s])));
                out.add(TensorBytes.floats(sb + ".scale", DType.F16, Shape.of(rows, gn), sliceScales));
                if (sliceZeros != null) {
                    out.add(TensorBytes.floats(sb + ".zero", DType.F16, Shape.of(rows, gn), sliceZeros));
                }
            }
        }
        return out;
    }

    /** Prefixes of every packed expert in the checkpoint, sorted. */
    public static List<String> expertPrefixes(Checkpoint checkpoint) {
        TreeSet<String> out = new TreeSet<>();
        for (String name : checkpoint.tensorNames()) {
            if (name.endsWith(PERM)) {
                out.add(name.substring(0, name.length() - PERM.length()));
            }
        }
        return new ArrayList<>(out);
    }

    /** Reads one expert back as quantized matrices in sorted order. */
    public static QuantizedExpert read(Checkpoint checkpoint, String expertPrefix) {
        Header h = header(checkpoint.file(expertPrefix + PERM).metadata());
        int[] order = TensorBytes.readInts(checkpoint, expertPrefix + PERM, null);
        int[] sliceBits = TensorBytes.readInts(checkpoint, expertPrefix + SLICE_BITS, null);
        int[] offsets = TensorBytes.readInts(checkpoint, expertPrefix + SLICE_OFFSETS, Shape.of(sliceBits.length + 1));
        if (offsets[0] != 0 || offsets[sliceBits.length] != order.length) {
            throw new IllegalArgumentException(expertPrefix + ": slice offsets " + Arrays.toString(offsets) + " do not span 0.." + order.length);
        }
        int[] sortedBits = new int[order.length];
        for (int s = 0; s < sliceBits.length; s++) {
            if (offsets[s + 1] <= offsets[s]) {
                throw new IllegalArgumentException(expertPrefix + ": slice offsets must increase, got " + Arrays.toString(offsets));
            }
            Arrays.fill(sortedBits, offsets[s], offsets[s + 1], sliceBits[s]);
        }
        MicroExpertPermutation p = MicroExpertPermutation.of(order, sortedBits);
        if (!Arrays.equals(p.sliceBits(), sliceBits)) {
            throw new IllegalArgumentException(expertPrefix + ": slice widths " + Arrays.toString(sliceBits) + " must strictly decrease");
        }
        Map<String, QuantizedMatrix> rows = new LinkedHashMap<>();
        for (String proj : h.rowProjections()) {
            rows.put(proj, readRowProjection(checkpoint, expertPrefix + "." + proj, p, h));
        }
        Map<String, QuantizedMatrix> cols = new LinkedHashMap<>();
        for (String proj : h.columnProjections()) {
            cols.put(proj, readColumnProjection(checkpoint, expertPrefix + "." + proj, p, h));
        }
        return new QuantizedExpert(p, rows, cols);
    }

    /**
     * The exact fp32 weights of one expert in the original micro-expert order, keyed by full tensor name
     * ({@code <expert>.<proj>.weight}); the caller closes them.
     */
    public static Map<String, FloatTensor> dequantize(Checkpoint checkpoint, String expertPrefix, HostAllocator allocator) {
        Map<String, FloatTensor> byProj = read(checkpoint, expertPrefix).dequantize(allocator);
        Map<String, FloatTensor> out = new LinkedHashMap<>();
        byProj.forEach((proj, t) -> out.put(expertPrefix + "." + proj + ".weight", t));
        return out;
    }

    private static QuantizedMatrix readRowProjection(Checkpoint ckpt, String base, MicroExpertPermutation p, Header h) {
        long[] shape = shape(ckpt, base);
        int rows = Math.toIntExact(shape[0]);
        int cols = Math.toIntExact(shape[1]);
        if (rows != p.size()) {
            throw new IllegalArgumentException(base + ": " + rows + " rows but " + p.size() + " micro-experts");
        }
        QuantLayout l = p.rowLayout(cols, h.groupSize(), h.symmetric(), ScaleFormat.F16);
        int groups = l.groupCount();
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups];
        byte[] zeros = h.symmetric() ? null : new byte[rows * groups];
        int[] offsets = p.sliceOffsets();
        int[] bits = p.sliceBits();
        for (int s = 0; s < bits.length; s++) {
            int r0 = offsets[s];
            int n = offsets[s + 1] - r0;
            String sb = base + ".q" + bits[s];
            byte[] codes = readStream(ckpt, sb + ".packed", (long) n * cols, bits[s]);
            System.arraycopy(codes, 0, q, r0 * cols, codes.length);
            float[] sc = TensorBytes.readFloats(ckpt, sb + ".scale", DType.F16, Shape.of(n, groups));
            System.arraycopy(sc, 0, scales, r0 * groups, sc.length);
            if (zeros != null) {
                byte[] z = toZeros(TensorBytes.readFloats(ckpt, sb + ".zero", DType.F16, Shape.of(n, groups)), sb);
                System.arraycopy(z, 0, zeros, r0 * groups, z.length);
            }
        }
        return new QuantizedMatrix(l, q, scales, zeros);
    }

    private static QuantizedMatrix readColumnProjection(Checkpoint ckpt, String base, MicroExpertPermutation p, Header h) {
        long[] shape = shape(ckpt, base);
        int rows = Math.toIntExact(shape[0]);
        int cols = Math.toIntExact(shape[1]);
        if (cols != p.size()) {
            throw new IllegalArgumentException(base + ": " + cols + " columns but " + p.size() + " micro-experts");
        }
        QuantLayout l = p.columnLayout(rows, h.groupSize(), h.symmetric(), ScaleFormat.F16);
        int groups = l.groupCount();
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups];
        byte[] zeros = h.symmetric() ? null : new byte[rows * groups];
        int[] offsets = p.sliceOffsets();
        int[] bits = p.sliceBits();
        for (int s = 0; s < bits.length; s++) {
            int c0 = offsets[s];
            int n = offsets[s + 1] - c0;
            int g0 = l.groupOfColumn(c0);
            int gn = l.groupOfColumn(offsets[s + 1] - 1) + 1 - g0;
            String sb = base + ".q" + bits[s];
            byte[] codes = readStream(ckpt, sb + ".packed", (long) rows * n, bits[s]);
            float[] sc = TensorBytes.readFloats(ckpt, sb + ".scale", DType.F16, Shape.of(rows, gn));
            byte[] z = zeros == null ? null : toZeros(TensorBytes.readFloats(ckpt, sb + ".zero", DType.F16, Shape.of(rows, gn)), sb);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(codes, r * n, q, r * cols + c0, n);
                System.arraycopy(sc, r * gn, scales, r * groups + g0, gn);
                if (z != null) {
                    System.arraycopy(z, r * gn, zeros, r * groups + g0, gn);
                }
            }
        }
        return new QuantizedMatrix(l, q, scales, zeros);
    }

    private static long[] shape(Checkpoint ckpt, String base) {
        TensorBytes.require(ckpt, base + ".weight_shape", DType.I64, Shape.of(2));
        return ckpt.readLongs(base + ".weight_shape");
    }

    private static byte[] readStream(Checkpoint ckpt, String name, long count, int bits) {
        TensorBytes.require(ckpt, name, DType.U8, Shape.of(BitPacking.streamBytes(count, bits)));
        return BitPacking.unpackBitstream(TensorBytes.read(ckpt, name), Math.toIntExact(count), bits);
    }

    private static QuantizedMatrix requireF16(String expert, String proj, QuantizedMatrix m) {
        if (m.layout().scaleFormat() != ScaleFormat.F16) {
            throw new IllegalArgumentException(expert + "." + proj + ": " + FORMAT + " stores F16 scales, the matrix has "
                    + m.layout().scaleFormat());
        }
        return m;
    }

    private static float[] toFloats(byte[] b) {
        float[] f = new float[b.length];
        for (int i = 0; i < b.length; i++) {
            f[i] = b[i];
        }
        return f;
    }

    private static byte[] toZeros(float[] f, String name) {
        byte[] b = new byte[f.length];
        for (int i = 0; i < f.length; i++) {
            if (f[i] != Math.rint(f[i]) || f[i] < -128 || f[i] > 127) {
                throw new IllegalArgumentException(name + ".zero[" + i + "] = " + f[i] + " is not an integer zero point");
            }
            b[i] = (byte) f[i];
        }
        return b;
    }

    private static String required(Map<String, String> metadata, String key) {
        String v = metadata.get(key);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException(FORMAT + " metadata lacks '" + key + "'");
        }
        return v;
    }

    private static List<String> split(String s) {
        return s.isEmpty() ? List.of() : Arrays.asList(s.split(","));
    }

    private static String join(int[] v) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < v.length; i++) {
            b.append(i == 0 ? "" : ",").append(v[i]);
        }
        return b.toString();
    }

    private static String join(double[] v) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < v.length; i++) {
            b.append(i == 0 ? "" : ",").append(v[i]);
        }
        return b.toString();
    }
}
