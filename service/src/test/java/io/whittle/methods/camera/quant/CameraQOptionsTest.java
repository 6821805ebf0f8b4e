package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.DType;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CameraQOptionsTest {

    @Test
    void defaults() {
        CameraQOptions o = CameraQOptions.parse(Map.of("alpha", "0.9"));
        assertThat(o).isEqualTo(CameraQOptions.defaults());
        assertThat(o.allocation().bits()).containsExactly(3, 2, 1);
        assertThat(o.groupSize()).isEqualTo(128);
        assertThat(o.quantizer()).isEqualTo(CameraQOptions.Quantizer.GPTQ);
        assertThat(o.damp()).isEqualTo(0.01);
        assertThat(o.symmetric()).isFalse();
        assertThat(o.export()).isEqualTo(CameraQOptions.Export.PACKED);
        assertThat(o.scaleFormat(DType.BF16)).isEqualTo(ScaleFormat.F16);
        o.requireCompatible(2048, 768);
    }

    @Test
    void compressedTensorsNeedsOneWidthAndWholeGroups() {
        CameraQOptions o = CameraQOptions.parse(Map.of("bits", "4", "fractions", "1", "export", "compressed-tensors", "sym", "true"));
        assertThat(o.uniformScheme(DType.BF16)).isEqualTo(new QuantScheme(4, 128, true, ScaleFormat.BF16));
        o.requireCompatible(2048, 768);
        assertThatThrownBy(() -> o.requireCompatible(2048, 1000))
                .hasMessage("group_size 128 does not divide the expert intermediate size (1000)");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("export", "compressed-tensors")))
                .hasMessageStartingWith("export=compressed-tensors needs one width for every micro-expert");
        // the packed format accepts intermediate sizes that are not multiples of the group size
        CameraQOptions.defaults().requireCompatible(2048, 1000);
    }

    @Test
    void badParametersFailBeforeWork() {
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("bits", "3,2,1", "fractions", "0.2,0.7,0.2")))
                .hasMessageStartingWith("fractions must sum to 1, got 1.0999");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("bits", "3,2"))).hasMessage("bits=3,2 needs fractions (one per width)");
        assertThat(CameraQOptions.parse(Map.of("bits", "4")).allocation().isSingleWidth()).isTrue();
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("bits", "12", "fractions", "1"))).hasMessage("bits must be in 1..8, got 12");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("group_size", "0")))
                .hasMessage("group_size must be a positive number of input columns, got 0");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("group_size", "big"))).hasMessage("group_size must be an integer, got 'big'");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("quantizer", "awq"))).hasMessage("quantizer must be gptq or rtn, got 'awq'");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("damp", "2"))).hasMessage("damp must be a fraction of mean(diag H) in [0, 1], got 2.0");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("sym", "yes"))).hasMessage("sym must be true or false, got 'yes'");
        assertThatThrownBy(() -> CameraQOptions.parse(Map.of("export", "gguf")))
                .hasMessage("export must be packed, dequantized or compressed-tensors, got 'gguf'");
        assertThatThrownBy(() -> CameraQOptions.defaults().requireCompatible(2000, 768))
                .hasMessage("group_size 128 does not divide hidden_size (2000)");
    }
}
