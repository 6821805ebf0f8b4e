package io.whittle.kernels;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import jcuda.nvrtc.JNvrtc;
import jcuda.nvrtc.nvrtcProgram;
import jcuda.nvrtc.nvrtcResult;

/**
 * NVRTC through JCuda (needs libnvrtc.so.12). Compiles to CUBIN for the exact architecture; for a GPU newer than
 * this NVRTC knows, to PTX for the newest architecture it supports (the driver then JIT-compiles it).
 */
final class NvrtcCompiler implements ModuleLoader.Compiler {

    private final String version;
    private final int[] supportedArchs;

    private NvrtcCompiler(String version, int[] supportedArchs) {
        this.version = version;
        this.supportedArchs = supportedArchs;
    }

    /** Loads NVRTC; throws {@link LinkageError} when libnvrtc.so.12 (or JCuda's JNI library for it) is missing. */
    static NvrtcCompiler load() {
        JNvrtc.setExceptionsEnabled(false);
        int[] major = {0};
        int[] minor = {0};
        check(JNvrtc.nvrtcVersion(major, minor), "nvrtcVersion");
        int[] n = {0};
        check(JNvrtc.nvrtcGetNumSupportedArchs(n), "nvrtcGetNumSupportedArchs");
        int[] archs = new int[n[0]];
        check(JNvrtc.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs");
        return new NvrtcCompiler(major[0] + "." + minor[0], archs);
    }

    private static void check(int rc, String call) {
        if (rc != nvrtcResult.NVRTC_SUCCESS) {
            throw new CudaException(call + " failed: " + JNvrtc.nvrtcGetErrorString(rc) + " (" + rc + ")", call, rc);
        }
    }

    @Override
    public String version() {
        return version;
    }

    @Override
    public byte[] compile(String module, String source, List<String> headerNames, List<String> headerSources, String arch) {
        int sm = Integer.parseInt(arch.substring(3));
        boolean cubin = Arrays.stream(supportedArchs).anyMatch(a -> a == sm);
        String target = arch;
        if (!cubin) {
            int best = Arrays.stream(supportedArchs).filter(a -> a <= sm).max().orElseThrow(() -> new CudaException(
                    "NVRTC " + version + " supports none of the architectures up to " + arch + ": " + Arrays.toString(supportedArchs),
                    "nvrtcGetSupportedArchs", 0));
            target = "compute_" + best;
        }
        nvrtcProgram program = new nvrtcProgram();
        check(JNvrtc.nvrtcCreateProgram(program, source, module, headerNames.size(), headerSources.toArray(new String[0]),
                headerNames.toArray(new String[0])), "nvrtcCreateProgram");
        try {
            String[] options = {"--gpu-architecture=" + target, "--std=c++17", "-lineinfo"};
            int rc = JNvrtc.nvrtcCompileProgram(program, options.length, options);
            String[] log = {""};
            JNvrtc.nvrtcGetProgramLog(program, log);
            if (rc != nvrtcResult.NVRTC_SUCCESS) {
                throw new KernelCompileException(module, target, JNvrtc.nvrtcGetErrorString(rc), rc, log[0]);
            }
            if (cubin) {
                long[] size = {0};
                check(JNvrtc.nvrtcGetCUBINSize(program, size), "nvrtcGetCUBINSize");
                byte[] out = new byte[Math.toIntExact(size[0])];
                check(JNvrtc.nvrtcGetCUBIN(program, out), "nvrtcGetCUBIN");
                return out;
            }
            String[] ptx = {null};
            check(JNvrtc.nvrtcGetPTX(program, ptx), "nvrtcGetPTX");
            byte[] text = ptx[0].getBytes(StandardCharsets.US_ASCII);
            return Arrays.copyOf(text, text.length + 1); // cuModuleLoadData wants the terminating NUL
        } finally {
            JNvrtc.nvrtcDestroyProgram(program);
        }
    }
}
