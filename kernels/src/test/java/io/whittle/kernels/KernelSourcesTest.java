package io.whittle.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class KernelSourcesTest {

    @Test
    void everySourceFileIsListedAndPackaged() throws Exception {
        try (Stream<Path> files = Files.list(Path.of("src/main/cuda"))) {
            var onDisk = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu")).collect(Collectors.toSet());
            assertThat(KernelSources.MODULES).containsExactlyInAnyOrderElementsOf(onDisk);
        }
        for (String module : KernelSources.MODULES) {
            String source = KernelSources.load(module);
            assertThat(source).contains("extern \"C\" __global__");
            // NVRTC in runtime images has no CUDA headers: sources must not include them
            assertThat(source).doesNotContain("#include <cuda");
            assertThat(source).as(module).contains("#include \"whittle_common.cuh\"");
            assertThat(KernelSources.moduleHash(module)).hasSize(64).isNotEqualTo(KernelSources.sha256(source));
        }
        try (Stream<Path> files = Files.list(Path.of("src/main/cuda"))) {
            var headers = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cuh")).collect(Collectors.toSet());
            assertThat(KernelSources.HEADERS).containsExactlyInAnyOrderElementsOf(headers);
        }
        assertThat(KernelSources.baseName("attention.cu")).isEqualTo("attention");
    }

    @Test
    void unknownModuleIsAClearError() {
        assertThatThrownBy(() -> KernelSources.load("nope.cu"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("nope.cu").hasMessageContaining("convert.cu");
    }

    @Test
    void probeNeverThrows() {
        CudaProbe.Result result = CudaProbe.probe();
        assertThat(result.reason()).isNotBlank();
        assertThat(result.usable()).isEqualTo(result.deviceCount() > 0);
    }
}
