package io.whittle.methods.camera.quant;

/**
 * Bit packing of signed integer codes.
 *
 * <p><b>compressed-tensors</b> ({@code pack_quantized.py: pack_to_int32 / unpack_from_int32}): a code q of width
 * b is stored unsigned as {@code q + 2^(b-1)}; {@code pf = 32 / b} (integer division) codes share one int32,
 * element j of a run at bits [b*j, b*j + b), lowest first; packing runs along the input dimension (columns), the
 * last int32 of a row zero-padded. Zero points use the same packing along dim 0 (rows). The sum wraps like torch's
 * int32 sum, so 8-bit codes in the top byte give negative int32 values.
 *
 * <p><b>Bit stream</b> (Whittle's packed format, any width 1..8): the unsigned codes {@code q + 2^(b-1)} of a
 * row-major block written back to back, code i at stream bits [b*i, b*i + b), stream bit k = bit (k mod 8) of byte
 * k / 8 (little-endian bit order); the last byte zero-padded.
 */
public final class BitPacking {

    private BitPacking() {
    }

    /** Codes per int32 at width {@code bits}. */
    public static int packFactor(int bits) {
        QuantScheme.requireBits(bits);
        return 32 / bits;
    }

    /** Packed columns for {@code cols} codes per row. */
    public static int packedCols(int cols, int bits) {
        int pf = packFactor(bits);
        return (cols + pf - 1) / pf;
    }

    /** {@code pack_to_int32(q, bits)} for row-major signed codes q [rows, cols]; returns [rows, packedCols]. */
    public static int[] packInt32(byte[] q, int rows, int cols, int bits) {
        requireLength(q.length, rows, cols);
        int pf = packFactor(bits);
        int pc = packedCols(cols, bits);
        int offset = 1 << (bits - 1);
        int mask = (1 << bits) - 1;
        int[] out = new int[rows * pc];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int u = requireCode(q[r * cols + c], bits, r, c) + offset;
                out[r * pc + c / pf] += (u & mask) << (bits * (c % pf));
            }
        }
        return out;
    }

    /** {@code unpack_from_int32(packed, bits, [rows, cols])}; returns signed codes [rows, cols]. */
    public static byte[] unpackInt32(int[] packed, int rows, int cols, int bits) {
        int pf = packFactor(bits);
        int pc = packedCols(cols, bits);
        if (packed.length != (long) rows * pc) {
            throw new IllegalArgumentException("packed int32 data: expected " + rows + "x" + pc + " values, got " + packed.length);
        }
        int offset = 1 << (bits - 1);
        int mask = (1 << bits) - 1;
        byte[] q = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                q[r * cols + c] = (byte) (((packed[r * pc + c / pf] >>> (bits * (c % pf))) & mask) - offset);
            }
        }
        return q;
    }

    /** {@code pack_to_int32(z, bits, packed_dim=0)} for signed z [rows, cols]; returns [ceil(rows / pf), cols]. */
    public static int[] packInt32Rows(byte[] z, int rows, int cols, int bits) {
        int[] packedT = packInt32(transpose(z, rows, cols), cols, rows, bits);
        return transpose(packedT, cols, packedCols(rows, bits));
    }

    /** Inverse of {@link #packInt32Rows}: signed values [rows, cols]. */
    public static byte[] unpackInt32Rows(int[] packed, int rows, int cols, int bits) {
        int pr = packedCols(rows, bits);
        if (packed.length != (long) pr * cols) {
            throw new IllegalArgumentException("packed int32 zero points: expected " + pr + "x" + cols + " values, got " + packed.length);
        }
        byte[] t = unpackInt32(transpose(packed, pr, cols), cols, rows, bits);
        return transpose(t, cols, rows);
    }

    /** Bytes of a bit stream of {@code count} codes at width {@code bits}. */
    public static long streamBytes(long count, int bits) {
        QuantScheme.requireBits(bits);
        return (count * bits + 7) / 8;
    }

    /** Writes {@code count} signed codes from {@code q[from..]} as a bit stream at width {@code bits}. */
    public static byte[] packBitstream(byte[] q, int from, int count, int bits) {
        int offset = 1 << (bits - 1);
        byte[] out = new byte[Math.toIntExact(streamBytes(count, bits))];
        long bit = 0;
        for (int i = 0; i < count; i++, bit += bits) {
            int u = requireCode(q[from + i], bits, -1, from + i) + offset;
            int at = (int) (bit >>> 3);
            int shift = (int) (bit & 7);
            int v = u << shift; // at most 8 + 7 bits: spans two bytes at most
            out[at] |= (byte) v;
            if (shift + bits > 8) {
                out[at + 1] |= (byte) (v >>> 8);
            }
        }
        return out;
    }

    /** Reads {@code count} signed codes of width {@code bits} from a bit stream. */
    public static byte[] unpackBitstream(byte[] stream, int count, int bits) {
        if (stream.length != streamBytes(count, bits)) {
            throw new IllegalArgumentException("bit stream of " + count + " codes at " + bits + " bits needs "
                    + streamBytes(count, bits) + " bytes, got " + stream.length);
        }
        int offset = 1 << (bits - 1);
        int mask = (1 << bits) - 1;
        byte[] q = new byte[count];
        long bit = 0;
        for (int i = 0; i < count; i++, bit += bits) {
            int at = (int) (bit >>> 3);
            int shift = (int) (bit & 7);
            int v = stream[at] & 0xFF;
            if (shift + bits > 8) {
                v |= (stream[at + 1] & 0xFF) << 8;
            }
            q[i] = (byte) (((v >>> shift) & mask) - offset);
        }
        return q;
    }

    private static int requireCode(int v, int bits, int r, int c) {
        int lo = -(1 << (bits - 1));
        int hi = (1 << (bits - 1)) - 1;
        if (v < lo || v > hi) {
            throw new IllegalArgumentException("code " + v + (r >= 0 ? " at [" + r + ", " + c + "]" : " at " + c)
                    + " does not fit " + bits + " bits (range [" + lo + ", " + hi + "])");
        }
        return v;
    }

    private static void requireLength(int length, int rows, int cols) {
        if (rows < 0 || cols < 0 || length != (long) rows * cols) {
            throw new IllegalArgumentException("expected " + rows + "x" + cols + " codes, got " + length);
        }
    }

    private static byte[] transpose(byte[] a, int rows, int cols) {
        byte[] t = new byte[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }

    private static int[] transpose(int[] a, int rows, int cols) {
        int[] t = new int[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
