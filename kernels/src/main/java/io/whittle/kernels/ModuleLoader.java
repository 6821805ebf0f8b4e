package io.whittle.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * Finds the binary of a CUDA module for one GPU architecture, in this order:
 * <ol>
 *   <li>a prebuilt cubin {@code <base>.<arch>.cubin} in the configured directory ({@code whittle.cuda.cubin-dir}
 *       or {@code WHITTLE_CUDA_CUBIN_DIR}), as {@code kernels/build/nvcc-check.sh} writes them; for hosts with
 *       nvcc but no NVRTC 12 (a CUDA 13 machine) and for images built with nvcc;</li>
 *   <li>the on-disk cache of earlier NVRTC compiles, keyed by the SHA-256 of the module and its headers, the
 *       architecture and the NVRTC version ({@code whittle.cuda.cache-dir} or {@code WHITTLE_CUDA_CACHE_DIR},
 *       default {@code ~/.cache/whittle/cubin});</li>
 *   <li>NVRTC, compiling the source shipped in the jar to CUBIN for the exact architecture (no driver PTX JIT,
 *       so an older driver than the toolkit is fine), and filling the cache.</li>
 * </ol>
 * Neither a cubin nor NVRTC: a {@link CudaException} that says what was tried and how to fix it; the service
 * then reports the GPU as unusable and keeps serving on CPU.
 */
public final class ModuleLoader {

    /** Compiles a module to a binary the driver loads for {@code arch}. */
    public interface Compiler {
        /** {@code 12.6}: part of the cache key. */
        String version();

        /** The binary (CUBIN, or NUL-terminated PTX when the GPU is newer than the compiler). */
        byte[] compile(String module, String source, List<String> headerNames, List<String> headerSources, String arch);
    }

    /** A loaded module binary and where it came from (reported by the devices endpoint and the GPU check). */
    public record Image(String module, String arch, byte[] binary, String origin) {
    }

    /** Where prebuilt cubins and the compile cache live; null for none. */
    public record Options(Path cubinDir, Path cacheDir) {

        /** From system properties, then environment variables, then defaults (no cubin dir, the user cache). */
        public static Options fromEnvironment() {
            String cubins = setting("whittle.cuda.cubin-dir", "WHITTLE_CUDA_CUBIN_DIR");
            String cache = setting("whittle.cuda.cache-dir", "WHITTLE_CUDA_CACHE_DIR");
            Path cacheDir = cache != null ? Path.of(cache)
                    : Path.of(System.getProperty("user.home"), ".cache", "whittle", "cubin");
            return new Options(cubins == null ? null : Path.of(cubins), cache != null && cache.equals("none") ? null : cacheDir);
        }

        private static String setting(String property, String env) {
            String v = System.getProperty(property);
            if (v == null || v.isBlank()) {
                v = System.getenv(env);
            }
            return v == null || v.isBlank() ? null : v.trim();
        }
    }

    private final Options options;
    private final Supplier<Compiler> compiler;

    /**
     * @param compiler supplies the compiler, or throws ({@link LinkageError} when libnvrtc.so.12 is missing) to say
     *                 it is unavailable; asked only when no prebuilt cubin is found
     */
    public ModuleLoader(Options options, Supplier<Compiler> compiler) {
        this.options = options;
        this.compiler = compiler;
    }

    /** The default loader: configured directories and NVRTC through JCuda. */
    public static ModuleLoader fromEnvironment() {
        return new ModuleLoader(Options.fromEnvironment(), NvrtcCompiler::load);
    }

    public Options options() {
        return options;
    }

    /** The cache file name: base, architecture, compiler version and the module hash. */
    static String cacheKey(String module, String arch, String compilerVersion) {
        return KernelSources.baseName(module) + "-" + arch + "-nvrtc" + compilerVersion + "-" + KernelSources.moduleHash(module)
                + ".cubin";
    }

    public Image load(String module, String arch) {
        List<String> tried = new ArrayList<>();
        if (options.cubinDir() != null) {
            Path prebuilt = options.cubinDir().resolve(KernelSources.baseName(module) + "." + arch + ".cubin");
            if (Files.isRegularFile(prebuilt)) {
                return new Image(module, arch, read(prebuilt), "prebuilt " + prebuilt);
            }
            tried.add("no prebuilt cubin at " + prebuilt);
        } else {
            tried.add("no prebuilt cubin directory configured (whittle.cuda.cubin-dir / WHITTLE_CUDA_CUBIN_DIR)");
        }
        Compiler c;
        try {
            c = compiler.get();
        } catch (LinkageError | RuntimeException e) {
            tried.add("NVRTC unavailable (" + firstLine(e) + ")");
            throw new CudaException("cannot load CUDA module " + module + " for " + arch + ": " + String.join("; ", tried)
                    + ". Install the CUDA 12 runtime libraries (libnvrtc.so.12), or build cubins with nvcc "
                    + "(kernels/build/nvcc-check.sh <sources> <dir>) and set whittle.cuda.cubin-dir or WHITTLE_CUDA_CUBIN_DIR",
                    "loadModule", 0, e);
        }
        Path cached = options.cacheDir() == null ? null : options.cacheDir().resolve(cacheKey(module, arch, c.version()));
        if (cached != null && Files.isRegularFile(cached)) {
            return new Image(module, arch, read(cached), "NVRTC " + c.version() + ", cached " + cached);
        }
        List<String> names = new ArrayList<>(KernelSources.HEADERS);
        List<String> sources = names.stream().map(KernelSources::load).toList();
        long t0 = System.nanoTime();
        byte[] binary = c.compile(module, KernelSources.load(module), names, sources, arch);
        String origin = String.format(Locale.ROOT, "NVRTC %s, compiled in %.1f s", c.version(), (System.nanoTime() - t0) / 1e9);
        if (cached != null) {
            origin += store(cached, binary);
        }
        return new Image(module, arch, binary, origin);
    }

    private static byte[] read(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new CudaException("cannot read CUDA module binary " + p + ": " + e.getMessage(), "loadModule", 0, e);
        }
    }

    /** Writes the cache entry atomically; a cache that cannot be written only costs a recompile next time. */
    private static String store(Path target, byte[] binary) {
        try {
            Files.createDirectories(target.getParent());
            Path tmp = Files.createTempFile(target.getParent(), target.getFileName().toString(), ".tmp");
            Files.write(tmp, binary);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return ", cached as " + target;
        } catch (IOException | UnsupportedOperationException e) {
            return ", not cached (" + e.getMessage() + ")";
        }
    }

    static String firstLine(Throwable e) {
        String m = e.getMessage();
        if (m == null) {
            return e.getClass().getSimpleName();
        }
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
