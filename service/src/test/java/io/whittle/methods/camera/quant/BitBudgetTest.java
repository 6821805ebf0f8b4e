package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.whittle.tensor.FloatTensor;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class BitBudgetTest {

    @Test
    void defaultsGiveTwoBitsPayloadAndTwoAndAQuarterWithOverhead() {
        BitAllocation a = BitAllocation.defaults();
        assertThat(a.bits()).containsExactly(3, 2, 1);
        assertThat(BitBudget.nominalPayload(a)).isEqualTo(2.0);
        assertThat(BitBudget.nominalOverhead(128, false)).isEqualTo(0.25);
        assertThat(BitBudget.nominalTotal(a, 128, false)).isEqualTo(2.25);
        assertThat(BitBudget.nominalTotal(a, 128, true)).isEqualTo(2.125);
        assertThat(BitBudget.arithmetic(a, 128, false))
                .isEqualTo("3x0.125 + 2x0.75 + 1x0.125 = 2.0000; + 16/128 scale + 16/128 zero = 2.2500 bpw");
        // the unused defaults of the CAMERA code, 8/4/2 bits at .1/.3/.6 -> 3.2 bpw payload
        assertThat(BitBudget.nominalPayload(BitAllocation.parse("8,4,2", "0.1,0.3,0.6"))).isCloseTo(3.2, within(1e-12));
    }

    @Test
    void classCountsSumToNAndRoundInExactDecimal() {
        BitAllocation a = BitAllocation.defaults();
        assertThat(a.classCounts(768)).containsExactly(96, 576, 96);
        assertThat(a.classCounts(98_304)).containsExactly(12_288, 73_728, 12_288); // Qwen3-30B-A3B layer
        assertThat(a.classCounts(10)).containsExactly(1, 7, 2); // boundaries floor(1.25) = 1, floor(8.75) = 8
        // 0.7 + 0.1 is 0.7999999999999999 in double; exact decimal keeps the boundary at 8
        assertThat(BitAllocation.parse("3,2,1", "0.7,0.1,0.2").classCounts(10)).containsExactly(7, 1, 2);
        assertThat(a.classCounts(0)).containsExactly(0, 0, 0);
    }

    @Test
    void achievedPayloadNeverExceedsTheRequestedOne() {
        Random rnd = new Random(2);
        BitAllocation[] allocations = {BitAllocation.defaults(), BitAllocation.parse("4,3,2,1", "0.1,0.2,0.3,0.4"),
                BitAllocation.parse("1,2", "0.5,0.5"), BitAllocation.parse("3,2,1", "0.33,0.33,0.34")};
        for (BitAllocation a : allocations) {
            for (int i = 0; i < 200; i++) {
                long n = 1 + rnd.nextInt(5000);
                long[] c = a.classCounts(n);
                assertThat(Arrays.stream(c).sum()).isEqualTo(n);
                for (int k = 0; k < c.length; k++) {
                    assertThat(Math.abs(c[k] - n * a.fractions()[k])).isLessThanOrEqualTo(1.0 + 1e-9);
                }
                assertThat(BitBudget.payloadForCounts(a, c)).isLessThanOrEqualTo(a.payloadBitsPerWeight() + 1e-12);
            }
        }
    }

    @Test
    void assignsWidthsByEnergyRankTiesByIndex() {
        BitAllocation a = BitAllocation.parse("3,2,1", "0.25,0.5,0.25");
        float[] energies = {0.5f, 9f, 0.1f, 3f, 3f, 0f, 7f, 0.2f};
        // ranking: 1 (9), 6 (7), 3 (3), 4 (3), 0 (.5), 7 (.2), 2 (.1), 5 (0); counts 2, 4, 2
        assertThat(a.assign(energies)).containsExactly(2, 3, 1, 2, 2, 1, 3, 2);
        assertThatThrownBy(() -> a.assign(new float[]{1f, Float.NaN})).hasMessage("energy of micro-expert 1 is NaN");
    }

    @Test
    void pairsAreSortedByWidth() {
        BitAllocation a = BitAllocation.parse(" 1, 3 ,2", "0.125,0.125,0.75");
        assertThat(a.bits()).containsExactly(3, 2, 1);
        assertThat(a.fractions()).containsExactly(0.125, 0.75, 0.125);
        assertThat(BitAllocation.parse("4", "1").isSingleWidth()).isTrue();
        assertThat(BitAllocation.parse("4,2", "1,0").isSingleWidth()).isTrue();
        assertThat(a.isSingleWidth()).isFalse();
    }

    @Test
    void badParametersAreClearErrors() {
        assertThatThrownBy(() -> BitAllocation.parse("3,2,1", "0.125,0.75,0.25"))
                .hasMessage("fractions must sum to 1, got 1.125 ([0.125, 0.75, 0.25])");
        assertThatThrownBy(() -> BitAllocation.parse("3,2", "0.125,0.75,0.125"))
                .hasMessage("bits has 2 entries but fractions has 3; give one fraction per width");
        assertThatThrownBy(() -> BitAllocation.parse("3,9,1", "0.125,0.75,0.125")).hasMessage("bits must be in 1..8, got 9");
        assertThatThrownBy(() -> BitAllocation.parse("3,0", "0.5,0.5")).hasMessage("bits must be in 1..8, got 0");
        assertThatThrownBy(() -> BitAllocation.parse("2,2", "0.5,0.5")).hasMessage("bits lists width 2 twice; widths must be distinct");
        assertThatThrownBy(() -> BitAllocation.parse("3,2", "1.5,-0.5")).hasMessage("fractions must be in [0, 1], got 1.5");
        assertThatThrownBy(() -> BitAllocation.parse("3,x", "0.5,0.5")).hasMessage("bits: 'x' is not an integer");
        assertThatThrownBy(() -> BitAllocation.parse("", "1")).hasMessage("bits must be a comma-separated list, got an empty value");
        assertThatThrownBy(() -> BitAllocation.parse("3", "0.5e")).hasMessage("fractions: '0.5e' is not a number");
    }

    @Test
    void achievedBudgetCountsRealGroups() {
        Random rnd = new Random(6);
        // gate [f=256, d=256] with per-row widths from the default allocation, and down [d, f] in column slices
        BitAllocation a = BitAllocation.defaults();
        float[] energies = new float[256];
        for (int j = 0; j < 256; j++) {
            energies[j] = rnd.nextFloat();
        }
        MicroExpertPermutation p = MicroExpertPermutation.byBits(a.assign(energies));
        assertThat(p.sliceOffsets()).containsExactly(0, 32, 224, 256);
        BitBudget budget = new BitBudget();
        try (FloatTensor gate = QuantTestData.tensor(QuantTestData.weights(rnd, 256, 256), 256, 256);
             FloatTensor down = QuantTestData.tensor(QuantTestData.weights(rnd, 256, 256), 256, 256)) {
            budget.add(RtnQuantizer.quantize(gate, p.rowLayout(256, 128, false, ScaleFormat.F16)), BitBudget.Storage.WHITTLE_PACKED);
            assertThat(budget.payloadBpw()).isEqualTo(2.0);
            assertThat(budget.withOverheadBpw()).isEqualTo(2.25);
            // down: slices of 32 / 192 / 32 columns -> groups 1 + 2 + 1 = 4 per row instead of 2
            budget.add(RtnQuantizer.quantize(down, p.columnLayout(256, 128, false, ScaleFormat.F16)), BitBudget.Storage.WHITTLE_PACKED);
        }
        assertThat(budget.weights()).isEqualTo(2L * 256 * 256);
        assertThat(budget.payloadBpw()).isEqualTo(2.0);
        assertThat(budget.scaleBpw()).isEqualTo((2 + 4) * 16.0 / (2 * 256));
        assertThat(budget.zeroBpw()).isEqualTo(budget.scaleBpw());
        budget.addIndexBits(32L * 256 + 32 * 7);
        assertThat(budget.totalBpw()).isGreaterThan(budget.withOverheadBpw());
        assertThat(budget.report()).containsKeys("payload_bpw", "with_overhead_bpw", "total_bpw");
    }

    @Test
    void compressedTensorsPacksZeroPointsAtTheWeightWidth() {
        BitBudget budget = new BitBudget();
        try (FloatTensor w = QuantTestData.tensor(QuantTestData.weights(new Random(1), 64, 256), 64, 256)) {
            budget.add(RtnQuantizer.quantize(w, QuantLayout.uniform(64, 256, new QuantScheme(4, 128, false, ScaleFormat.BF16))),
                    BitBudget.Storage.COMPRESSED_TENSORS);
        }
        assertThat(budget.payloadBpw()).isEqualTo(4.0);
        assertThat(budget.scaleBpw()).isEqualTo(0.125);
        assertThat(budget.zeroBpw()).isEqualTo(4.0 / 128);
    }
}
