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
 * The CUDA module sources shipped inside this jar. NVRTC compiles them at run time for the exact GPU, and the
 * cache key for the compiled CUBIN includes {@link #sha256(String)} of the source.
 */
public final class KernelSources {

    /** Every module, by file name under {@code src/main/cuda}; the build compiles each of them with nvcc. */
    public static final List<String> MODULES = List.of("convert.cu");

    private static final String RESOURCE_DIR = "/io/whittle/kernels/cuda/";

    private KernelSources() {
    }

    /** Source text of one module; fails with the module name when it is not in the jar. */
    public static String load(String module) {
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
