package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The building blocks composed on one expert: what the CAMERA-Q layer pipeline relies on. */
class CameraQExpertTest {

    private static double relErr(double[] ref, double[] got) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            num += (ref[i] - got[i]) * (ref[i] - got[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    private static double[] outputOf(ExpertFixture fx, QuantizedExpert e) {
        Map<String, FloatTensor> w = e.dequantize(HostAllocator.root());
        try {
            return fx.output(w.get("gate_proj").toArray(), w.get("up_proj").toArray(), w.get("down_proj").toArray());
        } finally {
            w.values().forEach(FloatTensor::close);
        }
    }

    @Test
    void gptqExpertOutputBeatsRtnAtTheSameMixedWidths() {
        ExpertFixture fx = new ExpertFixture(9, 64, 128, 1000);
        double[] ref = fx.output(fx.gate, fx.up, fx.down);
        double gptq = relErr(ref, outputOf(fx, fx.quantize(true, true, 32, false)));
        double rtn = relErr(ref, outputOf(fx, fx.quantize(false, true, 32, false)));
        assertThat(gptq).as("gptq %.4f vs rtn %.4f", gptq, rtn).isLessThan(0.9 * rtn);
    }

    @Test
    void expertWithoutRoutedTokensIsQuantizedByRtnAndStaysFinite() {
        ExpertFixture fx = new ExpertFixture(10, 64, 128, 0);
        QuantizedExpert gptq = fx.quantize(true, false, 32, false);
        QuantizedExpert rtn = fx.quantize(false, false, 32, false);
        assertThat(gptq.rowProjections()).isEqualTo(rtn.rowProjections());
        assertThat(gptq.columnProjections()).isEqualTo(rtn.columnProjections());
        Map<String, FloatTensor> w = gptq.dequantize(HostAllocator.root());
        try {
            for (FloatTensor t : w.values()) {
                for (float v : t.toArray()) {
                    assertThat(Float.isFinite(v)).isTrue();
                }
            }
        } finally {
            w.values().forEach(FloatTensor::close);
        }
    }
}
