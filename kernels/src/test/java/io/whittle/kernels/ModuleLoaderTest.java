package io.whittle.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where module binaries come from: prebuilt cubins, the NVRTC disk cache, a (fake) compiler, or a clear error. */
class ModuleLoaderTest {

    /** Records compiles; the "binary" names what was compiled. */
    static class FakeCompiler implements ModuleLoader.Compiler {
        final String version;
        final List<String> compiled = new ArrayList<>();

        FakeCompiler(String version) {
            this.version = version;
        }

        @Override
        public String version() {
            return version;
        }

        @Override
        public byte[] compile(String module, String source, List<String> headerNames, List<String> headerSources, String arch) {
            assertThat(headerNames).isEqualTo(KernelSources.HEADERS);
            assertThat(source).isEqualTo(KernelSources.load(module));
            compiled.add(module + "@" + arch);
            return (module + " for " + arch + " by " + version).getBytes(StandardCharsets.UTF_8);
        }
    }

    @Test
    void prebuiltCubinWinsWithoutTouchingTheCompiler(@TempDir Path dir) throws Exception {
        Files.write(dir.resolve("attention.sm_90.cubin"), new byte[] {1, 2, 3});
        ModuleLoader loader = new ModuleLoader(new ModuleLoader.Options(dir, null), () -> {
            throw new AssertionError("compiler asked although a cubin exists");
        });
        ModuleLoader.Image image = loader.load("attention.cu", "sm_90");
        assertThat(image.binary()).containsExactly(1, 2, 3);
        assertThat(image.origin()).isEqualTo("prebuilt " + dir.resolve("attention.sm_90.cubin"));
    }

    @Test
    void nvrtcCompilesOnceAndThenServesTheCache(@TempDir Path cache) {
        FakeCompiler nvrtc = new FakeCompiler("12.6");
        ModuleLoader loader = new ModuleLoader(new ModuleLoader.Options(null, cache), () -> nvrtc);
        ModuleLoader.Image first = loader.load("gemm.cu", "sm_90");
        assertThat(first.origin()).startsWith("NVRTC 12.6, compiled in").contains("cached as");
        ModuleLoader.Image second = loader.load("gemm.cu", "sm_90");
        assertThat(second.binary()).isEqualTo(first.binary());
        assertThat(second.origin()).startsWith("NVRTC 12.6, cached ");
        assertThat(nvrtc.compiled).containsExactly("gemm.cu@sm_90");
        loader.load("gemm.cu", "sm_80");
        assertThat(nvrtc.compiled).containsExactly("gemm.cu@sm_90", "gemm.cu@sm_80");
        // another NVRTC version is another key
        FakeCompiler newer = new FakeCompiler("12.9");
        new ModuleLoader(new ModuleLoader.Options(null, cache), () -> newer).load("gemm.cu", "sm_90");
        assertThat(newer.compiled).containsExactly("gemm.cu@sm_90");
    }

    @Test
    void cacheKeyHasArchitectureCompilerVersionAndTheSourceHash() {
        String key = ModuleLoader.cacheKey("routing.cu", "sm_80", "12.6");
        assertThat(key).isEqualTo("routing-sm_80-nvrtc12.6-" + KernelSources.moduleHash("routing.cu") + ".cubin");
        assertThat(ModuleLoader.cacheKey("norms.cu", "sm_80", "12.6")).isNotEqualTo(key.replace("routing", "norms"));
    }

    @Test
    void neitherCubinNorNvrtcIsAClearError(@TempDir Path dir) {
        ModuleLoader noDir = new ModuleLoader(new ModuleLoader.Options(null, null), () -> {
            throw new UnsatisfiedLinkError("libnvrtc.so.12: cannot open shared object file: No such file or directory\nnested trace");
        });
        assertThatThrownBy(() -> noDir.load("attention.cu", "sm_90")).isInstanceOf(CudaException.class)
                .hasMessage("cannot load CUDA module attention.cu for sm_90: no prebuilt cubin directory configured "
                        + "(whittle.cuda.cubin-dir / WHITTLE_CUDA_CUBIN_DIR); NVRTC unavailable (libnvrtc.so.12: cannot open shared object "
                        + "file: No such file or directory). Install the CUDA 12 runtime libraries (libnvrtc.so.12), or build cubins with "
                        + "nvcc (kernels/build/nvcc-check.sh <sources> <dir>) and set whittle.cuda.cubin-dir or WHITTLE_CUDA_CUBIN_DIR");
        ModuleLoader withDir = new ModuleLoader(new ModuleLoader.Options(dir, null), () -> {
            throw new UnsatisfiedLinkError("libnvrtc.so.12 missing");
        });
        assertThatThrownBy(() -> withDir.load("norms.cu", "sm_80")).isInstanceOf(CudaException.class)
                .hasMessageContaining("no prebuilt cubin at " + dir.resolve("norms.sm_80.cubin"));
    }

    @Test
    void compileErrorsPropagateWithTheLog() {
        ModuleLoader.Compiler broken = new FakeCompiler("12.6") {
            @Override
            public byte[] compile(String module, String source, List<String> names, List<String> sources, String arch) {
                throw new KernelCompileException(module, arch, "NVRTC_ERROR_COMPILATION", 6, "attention.cu(10): error: identifier undefined");
            }
        };
        ModuleLoader loader = new ModuleLoader(new ModuleLoader.Options(null, null), () -> broken);
        assertThatThrownBy(() -> loader.load("attention.cu", "sm_90")).isInstanceOf(KernelCompileException.class)
                .hasMessageContaining("NVRTC could not compile attention.cu for sm_90: NVRTC_ERROR_COMPILATION (6)")
                .hasMessageContaining("identifier undefined");
    }
}
