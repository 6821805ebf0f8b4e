package io.whittle.compute;

import java.util.Objects;

/**
 * Where backends report how long each coarse operation ("kernel": a GEMM, an attention, a routing pass) took on
 * which device. The engine knows nothing of metrics libraries: the service installs a {@link Listener} (Micrometer)
 * at start-up, and {@link Backends#create} then wraps every backend so that its operations are timed. With no
 * listener installed (CLI, tests) nothing is wrapped and nothing is measured.
 */
public final class KernelTimings {

    /** Receives one measurement per finished operation; called on the computing thread, so keep it cheap. */
    @FunctionalInterface
    public interface Listener {
        void kernelFinished(String kernel, String device, long nanos);

        /**
         * As {@link #kernelFinished(String, String, long)}, with the work the operation did: {@code flops}, the
         * floating-point operations of its matrix products (2 per multiply-add; element-wise work is not counted,
         * so 0 for element-wise operations), and {@code bytes}, the bytes of its fp32 operands, each read or
         * written once (the least memory traffic the operation needs). Achieved rates follow as work / time.
         */
        default void kernelFinished(String kernel, String device, long nanos, long flops, long bytes) {
            kernelFinished(kernel, device, nanos);
        }
    }

    /** The listener in place when none is installed. */
    public static final Listener NONE = (kernel, device, nanos) -> {
    };

    private static volatile Listener listener = NONE;

    private KernelTimings() {
    }

    /** Installs the process-wide listener (replacing any earlier one); {@link #NONE} switches timing off. */
    public static void install(Listener l) {
        listener = Objects.requireNonNull(l, "listener");
    }

    public static Listener current() {
        return listener;
    }

    /** Whether a listener other than {@link #NONE} is installed. */
    public static boolean enabled() {
        return listener != NONE;
    }
}
