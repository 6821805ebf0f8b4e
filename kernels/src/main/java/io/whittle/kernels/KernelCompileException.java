package io.whittle.kernels;

/** NVRTC rejected a module: a bug in the kernel source or an unsupported option. Carries the compiler log. */
public final class KernelCompileException extends CudaException {

    private final String log;

    public KernelCompileException(String module, String arch, String result, int code, String log) {
        super("NVRTC could not compile " + module + " for " + arch + ": " + result + " (" + code + ")\n" + log, "nvrtcCompileProgram",
                code);
        this.log = log;
    }

    public String log() {
        return log;
    }
}
