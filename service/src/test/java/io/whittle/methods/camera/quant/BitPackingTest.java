package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Expected int32 words come from an independent numpy transcription of compressed-tensors' pack_to_int32
 * ((value + offset) as uint8, zero-padded, shifted by num_bits * j and summed per pack group).
 */
class BitPackingTest {

    private static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    @Test
    void int4HandPackedExample() {
        byte[] q = new byte[16];
        for (int i = 0; i < 16; i++) {
            q[i] = (byte) (i - 8);
        }
        int[] packed = BitPacking.packInt32(q, 1, 16, 4);
        assertThat(packed).containsExactly(0x76543210, 0xFEDCBA98);
        assertThat(packed).containsExactly(1985229328, -19088744);
        assertThat(BitPacking.unpackInt32(packed, 1, 16, 4)).containsExactly(q);
    }

    @Test
    void int8TopByteWrapsLikeTorchInt32() {
        assertThat(BitPacking.packInt32(bytes(127, -128, 0, 1), 1, 4, 8)).containsExactly(-2122317569);
    }

    @Test
    void int2AndInt3Words() {
        byte[] q2 = new byte[16];
        for (int i = 0; i < 16; i++) {
            q2[i] = (byte) (i % 4 - 2);
        }
        assertThat(BitPacking.packInt32(q2, 1, 16, 2)).containsExactly(-454761244);
        // 3 bits: 10 codes per word (bits 0..29), the 11th starts a zero-padded word
        byte[] q3 = bytes(-4, 3, 0, -1, 2, 1, -3, -2, 0, 3, -1);
        int[] p3 = BitPacking.packInt32(q3, 1, 11, 3);
        assertThat(p3).containsExactly(1011279672, 3);
        assertThat(BitPacking.unpackInt32(p3, 1, 11, 3)).containsExactly(q3);
    }

    @Test
    void paddingOfAPartialWord() {
        byte[] q = bytes(-8, 7, 0, 1, 2, -3, 5, 6, 7, -8);
        int[] p = BitPacking.packInt32(q, 1, 10, 4);
        assertThat(p).containsExactly(-312829712, 15);
        assertThat(BitPacking.packedCols(10, 4)).isEqualTo(2);
    }

    @Test
    void zeroPointsPackAlongDimZero() {
        byte[] z = bytes(-8, 7, -7, 6, -6, 5, -5, 4, -4, 3, -3, 2, -2, 1, -1, 0, 0, -1, 1, -2); // [10, 2]
        int[] p = BitPacking.packInt32Rows(z, 10, 2, 4);
        assertThat(p).containsExactly(1985229328, -1985229329, 152, 103); // [2, 2]
        assertThat(BitPacking.unpackInt32Rows(p, 10, 2, 4)).containsExactly(z);
    }

    @Test
    void int32RoundTripsForEveryWidth() {
        Random rnd = new Random(11);
        for (int bits = 1; bits <= 8; bits++) {
            int rows = 1 + rnd.nextInt(7);
            int cols = 1 + rnd.nextInt(70);
            byte[] q = randomCodes(rnd, rows * cols, bits);
            int[] p = BitPacking.packInt32(q, rows, cols, bits);
            assertThat(p).hasSize(rows * ((cols + 32 / bits - 1) / (32 / bits)));
            assertThat(BitPacking.unpackInt32(p, rows, cols, bits)).as("bits %d", bits).containsExactly(q);
            int[] pr = BitPacking.packInt32Rows(q, rows, cols, bits);
            assertThat(BitPacking.unpackInt32Rows(pr, rows, cols, bits)).containsExactly(q);
        }
    }

    @Test
    void bitStreamHandExample() {
        // 3 bits: unsigned codes 0,7,4,3 at stream bits 0-2, 3-5, 6-8, 9-11 -> bytes 0x38, 0x07
        byte[] s = BitPacking.packBitstream(bytes(-4, 3, 0, -1), 0, 4, 3);
        assertThat(s).containsExactly((byte) 0x38, (byte) 0x07);
        assertThat(BitPacking.unpackBitstream(s, 4, 3)).containsExactly(-4, 3, 0, -1);
        // 1 bit: code 0 -> 1, code -1 -> 0; LSB first
        assertThat(BitPacking.packBitstream(bytes(0, -1, -1, 0, 0, 0, -1, 0, 0), 0, 9, 1))
                .containsExactly((byte) 0b1011_1001, (byte) 0b1);
    }

    @Test
    void bitStreamRoundTripsForEveryWidthAndOffset() {
        Random rnd = new Random(5);
        for (int bits = 1; bits <= 8; bits++) {
            int n = 1 + rnd.nextInt(500);
            byte[] q = randomCodes(rnd, n + 7, bits);
            byte[] s = BitPacking.packBitstream(q, 7, n, bits);
            assertThat(s).hasSize((n * bits + 7) / 8);
            byte[] back = BitPacking.unpackBitstream(s, n, bits);
            for (int i = 0; i < n; i++) {
                assertThat(back[i]).as("bits %d, code %d", bits, i).isEqualTo(q[7 + i]);
            }
        }
    }

    @Test
    void codesOutsideTheWidthAreRejected() {
        assertThatThrownBy(() -> BitPacking.packInt32(bytes(0, 8), 1, 2, 4))
                .hasMessage("code 8 at [0, 1] does not fit 4 bits (range [-8, 7])");
        assertThatThrownBy(() -> BitPacking.packBitstream(bytes(-3), 0, 1, 2))
                .hasMessage("code -3 at 0 does not fit 2 bits (range [-2, 1])");
        assertThatThrownBy(() -> BitPacking.unpackBitstream(new byte[3], 5, 3))
                .hasMessage("bit stream of 5 codes at 3 bits needs 2 bytes, got 3");
        assertThatThrownBy(() -> BitPacking.packFactor(9)).hasMessage("bits must be in 1..8, got 9");
    }

    private static byte[] randomCodes(Random rnd, int n, int bits) {
        byte[] q = new byte[n];
        for (int i = 0; i < n; i++) {
            q[i] = (byte) (rnd.nextInt(1 << bits) - (1 << (bits - 1)));
        }
        return q;
    }
}
