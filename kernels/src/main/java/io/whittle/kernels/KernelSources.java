package io.whittle.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * The CUDA module sources shipped inside this jar. NVRTC compiles them at run time for the exact GPU (with the
 * shared headers handed to it by name, since runtime images have no CUDA headers), and the cache key for the
 * compiled CUBIN includes {@link #moduleHash(String)}: the source and every header it may include.
 */
public final class KernelSources {

    /** Every module, by file name under {@code src/main/cuda}; the build compiles each of them with nvcc. */
    public static final List<String> MODULES = List.of("attention.cu", "convert.cu", "elementwise.cu", "energy.cu", "gemm.cu",
            "loss.cu", "norms.cu", "routing.cu");

    /** Headers the modules include ({@code #include "name"}); NVRTC receives them as named sources. */
    public static final List<String> HEADERS = List.of("whittle_common.cuh");

    private static final String RESOURCE_DIR = "/io/whittle/kernels/cuda/";

    private KernelSources() {
    }

    /** Source text of one module; fails with the module name when it is not in the jar. */
    public static String load(String module) {
        if (!MODULES.contains(module) && !HEADERS.contains(module)) {
            throw new IllegalArgumentException("CUDA module '" + module + "' is not packaged in the kernels jar; known: " + MODULES);
        }
        return read(module);
    }

    /** The module's base name, as nvcc's cubins are named ({@code attention.cu} -> {@code attention}). */
    public static String baseName(String module) {
        int dot = module.lastIndexOf('.');
        return dot < 0 ? module : module.substring(0, dot);
    }

    /** SHA-256 over the module source and every shared header (name and text), hex. */
    public static String moduleHash(String module) {
        StringBuilder all = new StringBuilder(load(module));
        for (String header : HEADERS) {
            all.append("\n//--header ").append(header).append('\n').append(load(header));
        }
        return sha256(all.toString());
    }

    private static String read(String module) {
        try (InputStream in = KernelSources.class.getResourceAsStream(RESOURCE_DIR + module)) {
            if (in == null) {
                throw new IllegalArgumentException("CUDA module '" + module + "' is not packaged in the kernels jar; known: " + MODULES);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading CUDA module " + module, e);
        }
    }

    public static String sha256(String source) {
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(digest.digest(source.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required by every JRE", e);
        }
    }
}
