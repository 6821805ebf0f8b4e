package io.whittle.compute.cuda;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.DeviceInfo;
import io.whittle.compute.DeviceMemoryInfo;
import io.whittle.compute.DeviceTimer;
import io.whittle.compute.MicroExpertEnergy;
import io.whittle.compute.Routing;
import io.whittle.compute.VisualLayout;
import io.whittle.kernels.CudaDevice;
import io.whittle.kernels.CudaStream;
import io.whittle.kernels.DeviceAllocator;
import io.whittle.kernels.DeviceBuffer;
import io.whittle.kernels.DeviceProperties;
import io.whittle.kernels.Dim3;
import io.whittle.kernels.Gemm;
import io.whittle.kernels.Kernel;
import io.whittle.kernels.KernelArgs;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The {@link Backend} on one NVIDIA GPU: tensors in device memory, every operation a kernel from the
 * {@code kernels} module (or cuBLAS for matrix products) on one stream. Results match the CPU backend to fp32
 * rounding (statistics in fp64 where the CPU uses fp64); the backend conformance suite checks every operation.
 *
 * <p>Device memory comes from the stream's allocator: its peak is the job's device peak and its close (in
 * {@link #close()}) fails when tensors were not closed. Host memory for downloads comes from the job's host
 * allocator. Matrix products run in fp32 by default; {@code whittle.cuda.matmul=bf16} rounds operands to bf16 for
 * the tensor cores (fp32 accumulation), about 3 significant digits per product.
 */
public final class CudaBackend implements Backend, DeviceTimer, DeviceMemoryInfo {

    /** Settings of one backend instance. */
    public record Options(Gemm.Precision matmulPrecision, long memoryLimitBytes) {

        public static Options defaults() {
            return new Options(Gemm.Precision.FP32, Long.MAX_VALUE);
        }

        /** {@code whittle.cuda.matmul} (fp32|bf16) and {@code whittle.cuda.memory-limit} (bytes), or their env twins. */
        public static Options fromEnvironment() {
            String matmul = setting("whittle.cuda.matmul", "WHITTLE_CUDA_MATMUL");
            String limit = setting("whittle.cuda.memory-limit", "WHITTLE_CUDA_MEMORY_LIMIT");
            Gemm.Precision p = Gemm.Precision.FP32;
            if (matmul != null) {
                p = switch (matmul.trim().toLowerCase()) {
                    case "fp32", "f32" -> Gemm.Precision.FP32;
                    case "bf16" -> Gemm.Precision.BF16;
                    default -> throw new IllegalArgumentException("whittle.cuda.matmul must be fp32 or bf16, got '" + matmul + "'");
                };
            }
            long bytes = Long.MAX_VALUE;
            if (limit != null) {
                try {
                    bytes = Long.parseLong(limit.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("whittle.cuda.memory-limit must be a byte count, got '" + limit + "'");
                }
            }
            return new Options(p, bytes);
        }

        private static String setting(String property, String env) {
            String v = System.getProperty(property);
            return v != null ? v : System.getenv(env);
        }
    }

    /** Head dimensions the attention kernel is instantiated for (the smallest that fits is used). */
    private static final int[] ATTENTION_HEAD_DIMS = {64, 128, 256};
    /** Query rows per attention block (WH_ATT_BQ in attention.cu). */
    private static final int ATTENTION_TILE = 32;
    /** Probabilities for the observer are computed for as many heads at once as fit in this many bytes. */
    private static final long PROBS_BUDGET_BYTES = 256L << 20;
    private static final int MAX_ROUTED_EXPERTS = 256;
    /** Rows and channels of one block of the micro-expert energy kernel (WH_E_BM, WH_E_BN in energy.cu). */
    private static final int ENERGY_ROWS = 128;
    private static final int ENERGY_CHANNELS = 64;
    private static final int ENERGY_TARGET_BLOCKS = 1024;

    private final CudaDevice device;
    private final CudaStream stream;
    private final HostAllocator host;
    private final Options options;
    private final DeviceProperties props;
    private final DeviceInfo info;
    private final Gemm gemm;
    private final Map<String, Kernel> kernels = new HashMap<>();
    private RotaryTables rotaryCache;

    public CudaBackend(CudaDevice device, HostAllocator hostAllocator, Options options) {
        this.device = device;
        this.host = hostAllocator;
        this.options = options;
        this.props = device.properties();
        this.stream = device.newStream("backend", options.memoryLimitBytes());
        try {
            this.gemm = stream.gemm();
            if (!gemm.supports(options.matmulPrecision())) {
                throw new IllegalStateException("matmul precision " + options.matmulPrecision() + " is not supported on " + props.describe());
            }
            this.info = new DeviceInfo(props.id(), "cuda", props.name(), props.computeCapability(), props.totalMemoryBytes(),
                    props.multiprocessors(), true, true, gemm.usesCublas(), gemm.implementation(), "ok");
        } catch (RuntimeException e) {
            stream.close();
            throw e;
        }
    }

    @Override
    public String name() {
        return props.id();
    }

    @Override
    public DeviceInfo device() {
        return info;
    }

    /** The stream this backend issues on (benchmarks time kernels on it). */
    public CudaStream stream() {
        return stream;
    }

    /** The device allocator of this backend: its peak is the job's device memory peak. */
    public DeviceAllocator deviceAllocator() {
        return stream.allocator();
    }

    public Options options() {
        return options;
    }

    /** GPU time of the work {@code body} issues on this backend's stream, from CUDA events. */
    @Override
    public double timeMillis(Runnable body) {
        return stream.timeMillis(body);
    }

    @Override
    public long availableBytes() {
        long device = stream.device().memInfo().freeBytes() + stream.cachedBytes();
        DeviceAllocator a = stream.allocator();
        return Math.min(device, a.limit() - a.allocatedBytes());
    }

    /** Whether {@link #matmul(Gemm.Precision, Tensor, boolean, Tensor, boolean, float, float, Tensor)} supports bf16 here. */
    public boolean supportsBf16Matmul() {
        return gemm.supports(Gemm.Precision.BF16);
    }

    private Kernel kernel(String module, String function) {
        return kernels.computeIfAbsent(module + "/" + function, k -> device.kernel(module, function));
    }

    private CudaTensor cuda(Tensor t) {
        if (t instanceof CudaTensor c && c.backend() == this) {
            return c;
        }
        throw new IllegalArgumentException("the " + name() + " backend got a tensor of another backend: " + t);
    }

    /** Blocks for a grid-stride kernel over {@code work} items: enough to fill the GPU, no more. */
    private int gridFor(long work, int perBlock) {
        long blocks = (work + perBlock - 1) / perBlock;
        return (int) Math.max(1, Math.min(blocks, (long) props.multiprocessors() * 32));
    }

    private DeviceBuffer scratch(long bytes, String label) {
        return stream.allocator().allocate(Math.max(bytes, 4), label);
    }

    // ---- memory ------------------------------------------------------------------------------------------

    @Override
    public Tensor allocate(Shape shape) {
        long n = shape.numel();
        DeviceBuffer b = stream.allocator().allocate(Math.max(4 * n, 4), "tensor " + shape);
        stream.memset32(b.address(), 0, n);
        return new CudaTensor(this, b, true, 0, shape);
    }

    @Override
    public Tensor upload(FloatTensor hostTensor) {
        long n = hostTensor.numel();
        DeviceBuffer b = stream.allocator().allocate(Math.max(4 * n, 4), "upload " + hostTensor.shape());
        try {
            stream.copyHostToDevice(b.address(), hostTensor.address(), 4 * n);
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
        return new CudaTensor(this, b, true, 0, hostTensor.shape());
    }

    @Override
    public FloatTensor toHost(Tensor tensor) {
        CudaTensor t = cuda(tensor);
        FloatTensor out = host.allocate(t.shape(), "download from " + name());
        try {
            stream.copyDeviceToHost(out.address(), t.address(), 4 * t.numel());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    @Override
    public void copy(Tensor src, long srcPos, Tensor dst, long dstPos, long count) {
        CudaTensor s = cuda(src);
        CudaTensor d = cuda(dst);
        if (count < 0 || srcPos < 0 || dstPos < 0 || srcPos + count > s.numel() || dstPos + count > d.numel()) {
            throw new IndexOutOfBoundsException("copy of " + count + " elements from " + s.shape() + " at " + srcPos + " to " + d.shape()
                    + " at " + dstPos + " is out of bounds");
        }
        stream.copyDeviceToDevice(d.address(dstPos), s.address(srcPos), 4 * count);
    }

    // ---- matrix products ---------------------------------------------------------------------------------

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta, Tensor c) {
        matmul(options.matmulPrecision(), a, transposeA, b, transposeB, alpha, beta, c);
    }

    /** {@link #matmul} in the given operand precision (benchmarks measure both). */
    public void matmul(Gemm.Precision precision, Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta,
                       Tensor c) {
        CudaTensor ta = cuda(a), tb = cuda(b), tc = cuda(c);
        int ar = ta.rows(), ac = ta.cols(), br = tb.rows(), bc = tb.cols();
        int m = transposeA ? ac : ar;
        int k = transposeA ? ar : ac;
        int kb = transposeB ? bc : br;
        int n = transposeB ? br : bc;
        if (k != kb || tc.rows() != m || tc.cols() != n) {
            throw new IllegalArgumentException("matmul shape mismatch: op(a)=" + m + "x" + k + " (a " + ta.shape()
                    + (transposeA ? "^T" : "") + "), op(b)=" + kb + "x" + n + " (b " + tb.shape() + (transposeB ? "^T" : "")
                    + "), c " + tc.shape());
        }
        if (m == 0 || n == 0) {
            return;
        }
        gemm.gemm(precision, transposeA, transposeB, m, n, k, alpha, ta.address(), ac, tb.address(), bc, beta, tc.address(), n);
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor y) {
        CudaTensor tx = cuda(x), tw = cuda(weight), ty = cuda(y);
        int t = tx.rows(), in = tx.cols(), out = tw.rows();
        if (tw.cols() != in || ty.rows() != t || ty.cols() != out) {
            throw new IllegalArgumentException("linear shape mismatch: x " + tx.shape() + ", weight " + tw.shape() + ", y " + ty.shape());
        }
        if (bias != null && bias.numel() != out) {
            throw new IllegalArgumentException("linear bias " + bias.shape() + " does not match " + out + " outputs");
        }
        if (t == 0) {
            return;
        }
        gemm.gemm(options.matmulPrecision(), false, true, t, out, in, 1f, tx.address(), in, tw.address(), in, 0f, ty.address(), out);
        if (bias != null) {
            stream.launch(kernel("elementwise.cu", "add_bias_rows_f32"), Dim3.of(gridFor(t, 1)), Dim3.of(blockForCols(out)), 0,
                    KernelArgs.of().ptr(ty.address()).ptr(cuda(bias).address()).i64(t).i32(out));
        }
    }

    /** Rows of {@code cols} floats at 16-byte aligned starts in every tensor: the x4 kernels apply. */
    private static boolean aligned4(long cols, CudaTensor... tensors) {
        if (cols % 4 != 0) {
            return false;
        }
        for (CudaTensor t : tensors) {
            if (t.address() % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    private static int blockForCols(int cols) {
        return Math.max(32, Math.min(256, (cols + 31) / 32 * 32));
    }

    // ---- element-wise and row-wise -----------------------------------------------------------------------

    @Override
    public void rmsNorm(Tensor x, Tensor weight, double eps, Tensor y) {
        CudaTensor tx = cuda(x), tw = cuda(weight), ty = cuda(y);
        long n = tw.numel();
        if (n == 0 || tx.numel() % n != 0 || ty.numel() != tx.numel()) {
            throw new IllegalArgumentException("rmsNorm shape mismatch: x " + tx.shape() + ", weight [" + n + "], y " + ty.shape());
        }
        long rows = tx.numel() / n;
        if (rows == 0) {
            return;
        }
        // one warp per row, 8 warps per block; 16-byte vectors where rows allow
        boolean vector = aligned4(n, tx, tw, ty);
        stream.launch(kernel("norms.cu", vector ? "rms_norm_f32x4" : "rms_norm_f32"), Dim3.of(gridFor(rows, 8)), Dim3.of(256), 0,
                KernelArgs.of().ptr(tx.address()).ptr(tw.address()).ptr(ty.address()).i64(rows).i32(Math.toIntExact(vector ? n / 4 : n))
                        .f64(eps));
    }

    @Override
    public void rotary(Tensor x, int heads, int headDim, int[] positions, double theta) {
        CudaTensor tx = cuda(x);
        int width = heads * headDim;
        if (tx.cols() != width || tx.rows() != positions.length || headDim % 2 != 0) {
            throw new IllegalArgumentException("rotary shape mismatch: x " + tx.shape() + " for " + positions.length + " positions x "
                    + heads + " heads x " + headDim);
        }
        if (positions.length == 0) {
            return;
        }
        RotaryTables tables = rotaryTables(headDim, theta, positions);
        int half = headDim / 2;
        stream.launch(kernel("elementwise.cu", "rotary_f32"), Dim3.of(gridFor(positions.length, 1)), Dim3.of(blockForCols(heads * half)), 0,
                KernelArgs.of().ptr(tx.address()).ptr(tables.posRow.address()).ptr(tables.cos.address()).ptr(tables.sin.address())
                        .i64(positions.length).i32(heads).i32(half));
    }

    /** cos/sin tables for the distinct positions, kept for the next call (k after q uses the same positions). */
    private RotaryTables rotaryTables(int headDim, double theta, int[] positions) {
        if (rotaryCache != null && rotaryCache.matches(headDim, theta, positions)) {
            return rotaryCache;
        }
        if (rotaryCache != null) {
            rotaryCache.close();
            rotaryCache = null;
        }
        RotaryTables t = RotaryTables.build(this, headDim, theta, positions);
        rotaryCache = t;
        return t;
    }

    DeviceBuffer uploadScratch(float[] values, String label) {
        DeviceBuffer b = scratch(4L * values.length, label);
        stream.upload(b.address(), values);
        return b;
    }

    DeviceBuffer uploadScratch(int[] values, String label) {
        DeviceBuffer b = scratch(4L * values.length, label);
        stream.upload(b.address(), values);
        return b;
    }

    @Override
    public void siluMul(Tensor gate, Tensor up, Tensor out) {
        CudaTensor g = cuda(gate), u = cuda(up), o = cuda(out);
        requireSameSize("siluMul", g, u, o);
        elementwise("silu_mul_f32", g, u, o);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        CudaTensor ta = cuda(a), tb = cuda(b), to = cuda(out);
        requireSameSize("add", ta, tb, to);
        elementwise("add_f32", ta, tb, to);
    }

    /** Runs the x4 (16-byte) variant when every pointer is 16-byte aligned and n is a multiple of 4. */
    private void elementwise(String function, CudaTensor a, CudaTensor b, CudaTensor out) {
        long n = a.numel();
        if (n == 0) {
            return;
        }
        boolean vector = n % 4 == 0 && a.address() % 16 == 0 && b.address() % 16 == 0 && out.address() % 16 == 0;
        long items = vector ? n / 4 : n;
        stream.launch(kernel("elementwise.cu", vector ? function + "x4" : function), Dim3.of(gridFor(items, 256)), Dim3.of(256), 0,
                KernelArgs.of().ptr(a.address()).ptr(b.address()).ptr(out.address()).i64(items));
    }

    private static void requireSameSize(String op, CudaTensor a, CudaTensor b, CudaTensor out) {
        if (a.numel() != b.numel() || a.numel() != out.numel()) {
            throw new IllegalArgumentException(op + ": sizes differ: " + a.shape() + ", " + b.shape() + ", " + out.shape());
        }
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        CudaTensor tx = cuda(x);
        int rows = tx.rows(), cols = tx.cols();
        if (scale.length != rows) {
            throw new IllegalArgumentException("scaleRows: " + scale.length + " scales for " + rows + " rows");
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        try (DeviceBuffer s = uploadScratch(scale, "scaleRows scales")) {
            stream.launch(kernel("elementwise.cu", "scale_rows_f32"), Dim3.of(gridFor(rows, 1)), Dim3.of(blockForCols(cols)), 0,
                    KernelArgs.of().ptr(tx.address()).ptr(s.address()).i64(rows).i32(cols));
        }
    }

    // ---- attention ---------------------------------------------------------------------------------------

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths,
                          AttentionObserver observer) {
        packedAttention("attention", true, q, k, v, out, shape, starts, lengths, observer);
    }

    /** The causal kernel's core with every key of the sequence visible (attention.cu, attention_bidir_fwd_d*). */
    @Override
    public void bidirectionalAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts,
                                       int[] lengths) {
        packedAttention("bidirectionalAttention", false, q, k, v, out, shape, starts, lengths, null);
    }

    private void checkAttentionShapes(String op, CudaTensor tq, CudaTensor tk, CudaTensor tv, CudaTensor to, AttentionShape shape) {
        int qWidth = shape.heads() * shape.headDim();
        int kvWidth = shape.kvHeads() * shape.headDim();
        if (tq.cols() != qWidth || to.cols() != qWidth || tk.cols() != kvWidth || tv.cols() != kvWidth || tk.rows() != tq.rows()
                || tv.rows() != tq.rows() || to.rows() != tq.rows()) {
            throw new IllegalArgumentException(op + " shape mismatch: q " + tq.shape() + ", k " + tk.shape() + ", v " + tv.shape()
                    + ", out " + to.shape() + " for " + shape);
        }
    }

    /** The smallest head dimension the attention kernels are instantiated for that fits {@code headDim}. */
    private static int attentionKernelDim(int headDim) {
        for (int d : ATTENTION_HEAD_DIMS) {
            if (headDim <= d) {
                return d;
            }
        }
        throw new IllegalArgumentException("the CUDA attention kernel supports head dimensions up to 256, got " + headDim);
    }

    /** Dynamic shared memory of one attention block (the layout in attention.cu). */
    private static int attentionSharedBytes(int headDim) {
        return 4 * (2 * ATTENTION_TILE * (headDim + 1) + ATTENTION_TILE * headDim + ATTENTION_TILE * (ATTENTION_TILE + 1));
    }

    private void packedAttention(String op, boolean causal, Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape,
                                 int[] starts, int[] lengths, AttentionObserver observer) {
        CudaTensor tq = cuda(q), tk = cuda(k), tv = cuda(v), to = cuda(out);
        checkAttentionShapes(op, tq, tk, tv, to, shape);
        if (starts.length != lengths.length) {
            throw new IllegalArgumentException(op + ": " + starts.length + " starts for " + lengths.length + " lengths");
        }
        int tiles = 0;
        for (int s = 0; s < starts.length; s++) {
            if (starts[s] < 0 || lengths[s] < 0 || (long) starts[s] + lengths[s] > tq.rows()) {
                throw new IllegalArgumentException(op + ": sequence " + s + " [" + starts[s] + ", +" + lengths[s] + ") outside "
                        + tq.rows() + " rows");
            }
            tiles += (lengths[s] + ATTENTION_TILE - 1) / ATTENTION_TILE;
        }
        int dmax = attentionKernelDim(shape.headDim());
        if (tiles == 0) {
            return;
        }
        int[] tileList = new int[2 * tiles];
        int t = 0;
        for (int s = 0; s < starts.length; s++) {
            for (int q0 = 0; q0 < lengths[s]; q0 += ATTENTION_TILE) {
                tileList[t++] = s;
                tileList[t++] = q0;
            }
        }
        AttentionObserver obs = observer == null ? AttentionObserver.NONE : observer;
        boolean probs = causal && obs.wantsProbabilities();
        int d = shape.headDim();
        float scale = (float) (1.0 / Math.sqrt(d));
        try (DeviceBuffer tileBuf = uploadScratch(tileList, op + " tiles");
             DeviceBuffer startBuf = uploadScratch(starts, op + " starts");
             DeviceBuffer lengthBuf = uploadScratch(lengths, op + " lengths");
             DeviceBuffer lse = probs ? scratch(4L * tq.rows() * shape.heads(), "attention log-sum-exp") : null) {
            KernelArgs args = KernelArgs.of().ptr(tq.address()).ptr(tk.address()).ptr(tv.address()).ptr(to.address());
            if (causal) {
                args.ptr(lse == null ? 0 : lse.address());
            }
            args.ptr(tileBuf.address()).ptr(startBuf.address()).ptr(lengthBuf.address()).i32(shape.heads()).i32(shape.kvHeads()).i32(d)
                    .f32(scale);
            String function = (causal ? "attention_fwd_d" : "attention_bidir_fwd_d") + dmax;
            stream.launch(kernel("attention.cu", function), Dim3.of(tiles, shape.heads()), Dim3.of(128), attentionSharedBytes(d), args);
            if (probs) {
                observeProbabilities(tq, tk, lse, shape, starts, lengths, scale, obs);
            }
        }
    }

    /** Recomputes each sequence's probabilities from q, k and the forward's log-sum-exp, a few heads at a time. */
    private void observeProbabilities(CudaTensor q, CudaTensor k, DeviceBuffer lse, AttentionShape shape, int[] starts, int[] lengths,
                                      float scale, AttentionObserver obs) {
        Kernel kernel = kernel("attention.cu", "attention_probs_f32");
        for (int s = 0; s < starts.length; s++) {
            int len = lengths[s];
            if (len == 0) {
                continue;
            }
            long perHead = 4L * len * len;
            int chunk = (int) Math.max(1, Math.min(shape.heads(), PROBS_BUDGET_BYTES / perHead));
            try (DeviceBuffer probs = scratch(perHead * chunk, "attention probabilities [" + chunk + ", " + len + ", " + len + "]")) {
                for (int h0 = 0; h0 < shape.heads(); h0 += chunk) {
                    int hc = Math.min(chunk, shape.heads() - h0);
                    stream.launch(kernel, Dim3.of((len + 31) / 32, (len + 7) / 8, hc), Dim3.of(32, 8), 0,
                            KernelArgs.of().ptr(q.address()).ptr(k.address()).ptr(lse.address()).i64(starts[s]).i32(len)
                                    .i32(shape.heads()).i32(shape.kvHeads()).i32(shape.headDim()).f32(scale).i32(h0)
                                    .ptr(probs.address()));
                    for (int hh = 0; hh < hc; hh++) {
                        float[] p = stream.downloadFloats(probs.address() + perHead * hh, len * len);
                        obs.probabilities(s, h0 + hh, len, p);
                    }
                }
            }
        }
    }

    // ---- MoE ---------------------------------------------------------------------------------------------

    @Override
    public Routing route(Tensor logits, int topK, boolean renormalize, double renormEpsilon) {
        CudaTensor tl = cuda(logits);
        int tokens = tl.rows(), experts = tl.cols();
        if (topK < 1 || topK > experts) {
            throw new IllegalArgumentException("top-k " + topK + " for " + experts + " experts");
        }
        if (experts > MAX_ROUTED_EXPERTS) {
            throw new IllegalArgumentException("the CUDA routing kernel supports up to " + MAX_ROUTED_EXPERTS + " experts, got " + experts);
        }
        if (tokens == 0) {
            return new Routing(0, topK, experts, new int[0], new float[0]);
        }
        int n = tokens * topK;
        try (DeviceBuffer chosen = scratch(4L * n, "routing experts"); DeviceBuffer weights = scratch(4L * n, "routing weights")) {
            stream.launch(kernel("routing.cu", "route_topk_f32"), Dim3.of(gridFor(tokens, 8)), Dim3.of(256), 0,
                    KernelArgs.of().ptr(tl.address()).i64(tokens).i32(experts).i32(topK).i32(renormalize ? 1 : 0).f64(renormEpsilon)
                            .ptr(chosen.address()).ptr(weights.address()));
            return new Routing(tokens, topK, experts, stream.downloadInts(chosen.address(), n), stream.downloadFloats(weights.address(), n));
        }
    }

    @Override
    public void gatherRows(Tensor src, int[] rows, Tensor dst) {
        CudaTensor ts = cuda(src), td = cuda(dst);
        int cols = ts.cols();
        if (td.cols() != cols || td.rows() != rows.length) {
            throw new IllegalArgumentException("gatherRows: src " + ts.shape() + ", " + rows.length + " rows, dst " + td.shape());
        }
        checkRows("gatherRows", rows, ts.rows());
        if (rows.length == 0 || cols == 0) {
            return;
        }
        boolean vector = aligned4(cols, ts, td);
        int width = vector ? cols / 4 : cols;
        try (DeviceBuffer r = uploadScratch(rows, "gatherRows rows")) {
            stream.launch(kernel("elementwise.cu", vector ? "gather_rows_f32x4" : "gather_rows_f32"), Dim3.of(gridFor(rows.length, 1)),
                    Dim3.of(blockForCols(width)), 0,
                    KernelArgs.of().ptr(ts.address()).ptr(r.address()).i32(rows.length).i32(width).ptr(td.address()));
        }
    }

    @Override
    public void scatterAddRows(Tensor src, int[] rows, float[] weights, Tensor dst) {
        CudaTensor ts = cuda(src), td = cuda(dst);
        int cols = ts.cols();
        if (td.cols() != cols || ts.rows() != rows.length || (weights != null && weights.length != rows.length)) {
            throw new IllegalArgumentException("scatterAddRows: src " + ts.shape() + ", " + rows.length + " rows, dst " + td.shape());
        }
        checkRows("scatterAddRows", rows, td.rows());
        if (rows.length == 0 || cols == 0) {
            return;
        }
        boolean distinct = Arrays.stream(rows).distinct().count() == rows.length;
        try (DeviceBuffer r = uploadScratch(rows, "scatterAddRows rows");
             DeviceBuffer w = weights == null ? null : uploadScratch(weights, "scatterAddRows weights")) {
            boolean vector = distinct && aligned4(cols, ts, td);
            int width = vector ? cols / 4 : cols;
            KernelArgs args = KernelArgs.of().ptr(ts.address()).ptr(r.address()).ptr(w == null ? 0 : w.address()).i32(rows.length).i32(width)
                    .ptr(td.address());
            if (distinct) {
                stream.launch(kernel("elementwise.cu", vector ? "scatter_add_rows_f32x4" : "scatter_add_rows_f32"),
                        Dim3.of(gridFor(rows.length, 1)), Dim3.of(blockForCols(width)), 0, args);
            } else {
                // repeated rows must add in index order: one thread per column walks the rows
                stream.launch(kernel("elementwise.cu", "scatter_add_rows_ordered_f32"), Dim3.of((cols + 255) / 256), Dim3.of(256), 0, args);
            }
        }
    }

    /**
     * One fused kernel (energy.cu): both products of a [128 rows x 64 channels] tile stay in registers and only
     * per-channel fp64 partials reach memory, reduced in a fixed order on the device; the [n x f] activations are
     * never stored. Products are exact fp32 whatever the matmul precision (the scores rank channels). The result
     * is deterministic for a given shape; it differs from the CPU backend's row-order sums by fp64 rounding.
     */
    @Override
    public void microExpertEnergy(Tensor xRouted, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq,
                                  double[] maxSq) {
        MicroExpertEnergy.check(xRouted, wGate, wUp, routingWeight, sumSq, maxSq);
        CudaTensor tx = cuda(xRouted), tg = cuda(wGate), tu = cuda(wUp);
        int n = tx.rows(), d = tx.cols(), f = tg.rows();
        if (n == 0 || f == 0) {
            return;
        }
        int channelTiles = (f + ENERGY_CHANNELS - 1) / ENERGY_CHANNELS;
        int parts = energyParts(n, f);
        try (DeviceBuffer a = uploadScratch(routingWeight, "microExpertEnergy routing weights");
             DeviceBuffer partSum = scratch(8L * parts * f, "microExpertEnergy partial sums [" + parts + ", " + f + "]");
             DeviceBuffer partMax = scratch(8L * parts * f, "microExpertEnergy partial maxima [" + parts + ", " + f + "]");
             DeviceBuffer total = scratch(16L * f, "microExpertEnergy totals")) {
            stream.launch(kernel("energy.cu", "micro_expert_energy_f32"), Dim3.of(channelTiles, parts), Dim3.of(256), 0,
                    KernelArgs.of().ptr(tx.address()).ptr(tg.address()).ptr(tu.address()).ptr(a.address()).i32(n).i32(d).i32(f)
                            .ptr(partSum.address()).ptr(partMax.address()));
            stream.launch(kernel("energy.cu", "micro_expert_energy_reduce"), Dim3.of((f + 255) / 256), Dim3.of(256), 0,
                    KernelArgs.of().ptr(partSum.address()).ptr(partMax.address()).i32(parts).i32(f).ptr(total.address()));
            double[] t = stream.downloadDoubles(total.address(), 2 * f);
            for (int j = 0; j < f; j++) {
                sumSq[j] += t[j];
                if (t[f + j] > maxSq[j]) {
                    maxSq[j] = t[f + j];
                }
            }
        }
    }

    /**
     * Row groups of the energy kernel: about {@link #ENERGY_TARGET_BLOCKS} blocks in all (several waves on any
     * current GPU), never more groups than row tiles. A function of the shape only, so the summation order, and
     * with it the result, does not depend on the device.
     */
    static int energyParts(int n, int f) {
        int rowTiles = (n + ENERGY_ROWS - 1) / ENERGY_ROWS;
        int channelTiles = (f + ENERGY_CHANNELS - 1) / ENERGY_CHANNELS;
        int wanted = (ENERGY_TARGET_BLOCKS + channelTiles - 1) / channelTiles;
        return Math.max(1, Math.min(rowTiles, wanted));
    }

    private static void checkRows(String op, int[] rows, int limit) {
        for (int i = 0; i < rows.length; i++) {
            if (rows[i] < 0 || rows[i] >= limit) {
                throw new IndexOutOfBoundsException(op + ": row index " + rows[i] + " at position " + i + " outside [0, " + limit + ")");
            }
        }
    }

    // ---- reductions --------------------------------------------------------------------------------------

    @Override
    public double[] rowSumSquares(Tensor x) {
        CudaTensor tx = cuda(x);
        int rows = tx.rows(), cols = tx.cols();
        if (rows == 0) {
            return new double[0];
        }
        try (DeviceBuffer out = scratch(8L * rows, "rowSumSquares")) {
            stream.launch(kernel("norms.cu", "row_sumsq_f32"), Dim3.of(gridFor(rows, 8)), Dim3.of(256), 0,
                    KernelArgs.of().ptr(tx.address()).i64(rows).i32(cols).ptr(out.address()));
            return stream.downloadDoubles(out.address(), rows);
        }
    }

    @Override
    public double[] columnSumSquares(Tensor x) {
        CudaTensor tx = cuda(x);
        int rows = tx.rows(), cols = tx.cols();
        if (cols == 0) {
            return new double[0];
        }
        try (DeviceBuffer out = scratch(8L * cols, "columnSumSquares")) {
            stream.launch(kernel("norms.cu", "col_sumsq_f32"), Dim3.of((cols + 31) / 32), Dim3.of(32, 8), 0,
                    KernelArgs.of().ptr(tx.address()).i64(rows).i32(cols).ptr(out.address()));
            return stream.downloadDoubles(out.address(), cols);
        }
    }

    // ---- loss --------------------------------------------------------------------------------------------

    @Override
    public double[] crossEntropy(Tensor logits, int[] targets) {
        CudaTensor tl = cuda(logits);
        int rows = tl.rows(), vocab = tl.cols();
        if (targets.length != rows) {
            throw new IllegalArgumentException("crossEntropy: " + targets.length + " targets for " + rows + " rows");
        }
        for (int i = 0; i < rows; i++) {
            if (targets[i] >= vocab) {
                throw new IndexOutOfBoundsException("crossEntropy: target " + targets[i] + " at row " + i + " outside a vocabulary of " + vocab);
            }
        }
        if (rows == 0) {
            return new double[0];
        }
        try (DeviceBuffer t = uploadScratch(targets, "crossEntropy targets"); DeviceBuffer out = scratch(8L * rows, "crossEntropy nll")) {
            stream.launch(kernel("loss.cu", "cross_entropy_f32"), Dim3.of(gridFor(rows, 1)), Dim3.of(256), 0,
                    KernelArgs.of().ptr(tl.address()).i64(rows).i32(vocab).ptr(t.address()).ptr(out.address()));
            return stream.downloadDoubles(out.address(), rows);
        }
    }

    // ---- vision tower and visual-token pruning -------------------------------------------------------------

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, double eps, Tensor y) {
        CudaTensor tx = cuda(x), tw = cuda(weight), ty = cuda(y);
        CudaTensor tb = bias == null ? null : cuda(bias);
        long n = tw.numel();
        if (n == 0 || tx.numel() % n != 0 || ty.numel() != tx.numel() || (tb != null && tb.numel() != n)) {
            throw new IllegalArgumentException("layerNorm shape mismatch: x " + tx.shape() + ", weight [" + n + "], bias "
                    + (tb == null ? "none" : "[" + tb.numel() + "]") + ", y " + ty.shape());
        }
        long rows = tx.numel() / n;
        if (rows == 0) {
            return;
        }
        // one warp per row, 8 warps per block
        stream.launch(kernel("norms.cu", "layer_norm_f32"), Dim3.of(gridFor(rows, 8)), Dim3.of(256), 0,
                KernelArgs.of().ptr(tx.address()).ptr(tw.address()).ptr(tb == null ? 0 : tb.address()).ptr(ty.address()).i64(rows)
                        .i32(Math.toIntExact(n)).f64(eps));
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        unary("gelu", "gelu_f32", x, out);
    }

    @Override
    public void quickGelu(Tensor x, Tensor out) {
        unary("quickGelu", "quick_gelu_f32", x, out);
    }

    /** An element-wise kernel {@code out = f(x)} of elementwise.cu; its x4 twin where both are 16-byte aligned. */
    private void unary(String op, String function, Tensor x, Tensor out) {
        CudaTensor tx = cuda(x), to = cuda(out);
        if (tx.numel() != to.numel()) {
            throw new IllegalArgumentException(op + ": sizes differ: " + tx.shape() + ", " + to.shape());
        }
        long n = tx.numel();
        if (n == 0) {
            return;
        }
        boolean vector = n % 4 == 0 && tx.address() % 16 == 0 && to.address() % 16 == 0;
        long items = vector ? n / 4 : n;
        stream.launch(kernel("elementwise.cu", vector ? function + "x4" : function), Dim3.of(gridFor(items, 256)), Dim3.of(256), 0,
                KernelArgs.of().ptr(tx.address()).ptr(to.address()).i64(items));
    }

    /**
     * One kernel launch (elementwise.cu, copy_block_f32). The blocks must not overlap in memory (a block moved
     * within one tensor): that is rejected, since a parallel copy of overlapping blocks is a race.
     */
    @Override
    public void copyBlock(Tensor src, int srcRow, int srcCol, Tensor dst, int dstRow, int dstCol, int rows, int cols) {
        CudaTensor ts = cuda(src), td = cuda(dst);
        if (rows < 0 || cols < 0 || srcRow < 0 || srcCol < 0 || dstRow < 0 || dstCol < 0
                || (long) srcRow + rows > ts.rows() || (long) srcCol + cols > ts.cols() || (long) dstRow + rows > td.rows()
                || (long) dstCol + cols > td.cols()) {
            throw new IllegalArgumentException("copyBlock: " + rows + "x" + cols + " block from (" + srcRow + ", " + srcCol + ") of "
                    + ts.shape() + " to (" + dstRow + ", " + dstCol + ") of " + td.shape() + " is out of bounds");
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        long sc = ts.cols(), dc = td.cols();
        long srcFirst = ts.address((long) srcRow * sc + srcCol);
        long dstFirst = td.address((long) dstRow * dc + dstCol);
        long srcEnd = srcFirst + 4 * ((rows - 1) * sc + cols);
        long dstEnd = dstFirst + 4 * ((rows - 1) * dc + cols);
        if (srcFirst < dstEnd && dstFirst < srcEnd && blocksOverlap(srcFirst, sc, dstFirst, dc, rows, cols)) {
            throw new IllegalArgumentException("copyBlock: the " + rows + "x" + cols + " blocks at (" + srcRow + ", " + srcCol + ") of "
                    + ts.shape() + " and (" + dstRow + ", " + dstCol + ") of " + td.shape() + " overlap in memory");
        }
        stream.launch(kernel("elementwise.cu", "copy_block_f32"), Dim3.of(gridFor(rows, 1)), Dim3.of(blockForCols(cols)), 0,
                KernelArgs.of().ptr(srcFirst).i64(sc).ptr(dstFirst).i64(dc).i32(rows).i32(cols));
    }

    /** Whether some row of one strided block shares an element with some row of the other (addresses in bytes). */
    private static boolean blocksOverlap(long a, long lda, long b, long ldb, int rows, int cols) {
        long width = 4L * cols;
        for (int r = 0; r < rows; r++) {
            long a0 = a + 4 * lda * r;
            // only rows r2 of b with a0 - width < b + 4 ldb r2 < a0 + width can meet row r of a
            long lo = Math.max(0, Math.floorDiv(a0 - width - b, 4 * ldb));
            long hi = Math.min(rows - 1L, Math.floorDiv(a0 + width - 1 - b, 4 * ldb));
            for (long r2 = lo; r2 <= hi; r2++) {
                long b0 = b + 4 * ldb * r2;
                if (b0 < a0 + width && a0 < b0 + width) {
                    return true;
                }
            }
        }
        return false;
    }

    @Override
    public void visualMaskedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads, boolean renormalize, AttentionObserver observer) {
        visualAttention("visualMaskedAttention", q, k, v, out, shape, layout, keepHeads, renormalize, observer);
    }

    /**
     * The masked kernel with renormalisation, which is sparse already: a pruned head computes and reads nothing of
     * its visual rows and skips every visual key, and a visual query tile of a kept head visits only the prefix
     * and the key tiles its windows reach.
     */
    @Override
    public void visualPrunedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads) {
        visualAttention("visualPrunedAttention", q, k, v, out, shape, layout, keepHeads, true, null);
    }

    private void visualAttention(String op, Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                 boolean[] keepHeads, boolean renormalize, AttentionObserver observer) {
        CudaTensor tq = cuda(q), tk = cuda(k), tv = cuda(v), to = cuda(out);
        checkAttentionShapes(op, tq, tk, tv, to, shape);
        int t = tq.rows();
        if (layout.visualEnd() > t) {
            throw new IllegalArgumentException(op + ": the visual tokens [" + layout.prefix() + ", " + layout.visualEnd()
                    + ") do not fit a sequence of " + t + " rows");
        }
        if (keepHeads.length != shape.heads()) {
            throw new IllegalArgumentException(op + ": " + keepHeads.length + " head flags for " + shape.heads() + " heads");
        }
        int dmax = attentionKernelDim(shape.headDim());
        if (t == 0) {
            return;
        }
        int[] keep = new int[keepHeads.length];
        for (int h = 0; h < keep.length; h++) {
            keep[h] = keepHeads[h] ? 1 : 0;
        }
        int d = shape.headDim();
        float scale = (float) (1.0 / Math.sqrt(d));
        try (DeviceBuffer keepBuf = uploadScratch(keep, op + " head flags")) {
            stream.launch(kernel("attention.cu", "visual_attention_fwd_d" + dmax), Dim3.of((t + ATTENTION_TILE - 1) / ATTENTION_TILE,
                    shape.heads()), Dim3.of(128), attentionSharedBytes(d),
                    KernelArgs.of().ptr(tq.address()).ptr(tk.address()).ptr(tv.address()).ptr(to.address()).i32(t).ptr(keepBuf.address())
                            .i32(shape.heads()).i32(shape.kvHeads()).i32(d).f32(scale).i32(layout.prefix()).i32(layout.gridRows())
                            .i32(layout.gridCols()).i32(layout.windowRadius()).i32(renormalize ? 1 : 0));
            AttentionObserver obs = observer == null ? AttentionObserver.NONE : observer;
            if (obs.wantsProbabilities()) {
                observeVisualProbabilities(tq, tk, keepBuf, shape, layout, renormalize, scale, t, obs);
            }
        }
    }

    /** The final [T, T] weights of each head under the visual masks, a few heads at a time. */
    private void observeVisualProbabilities(CudaTensor q, CudaTensor k, DeviceBuffer keep, AttentionShape shape, VisualLayout layout,
                                            boolean renormalize, float scale, int t, AttentionObserver obs) {
        long perHead = 4L * t * t;
        int chunk = (int) Math.max(1, Math.min(shape.heads(), PROBS_BUDGET_BYTES / perHead));
        try (DeviceBuffer probs = scratch(perHead * chunk, "visual attention probabilities [" + chunk + ", " + t + ", " + t + "]")) {
            for (int h0 = 0; h0 < shape.heads(); h0 += chunk) {
                int hc = Math.min(chunk, shape.heads() - h0);
                stream.launch(kernel("attention.cu", "visual_attention_probs_f32"), Dim3.of((t + 7) / 8, hc), Dim3.of(256), 0,
                        KernelArgs.of().ptr(q.address()).ptr(k.address()).i32(t).ptr(keep.address()).i32(shape.heads())
                                .i32(shape.kvHeads()).i32(shape.headDim()).f32(scale).i32(layout.prefix()).i32(layout.gridRows())
                                .i32(layout.gridCols()).i32(layout.windowRadius()).i32(renormalize ? 1 : 0).i32(h0)
                                .ptr(probs.address()));
                for (int hh = 0; hh < hc; hh++) {
                    obs.probabilities(0, h0 + hh, t, stream.downloadFloats(probs.address() + perHead * hh, t * t));
                }
            }
        }
    }

    /** Closes the stream: fails (after freeing them) when device tensors of this backend are still open. */
    @Override
    public void close() {
        try {
            if (rotaryCache != null) {
                rotaryCache.close();
                rotaryCache = null;
            }
        } finally {
            stream.close();
        }
    }

    /** Device-side rotary tables for one (headDim, theta, positions), computed exactly as the CPU backend does. */
    static final class RotaryTables implements AutoCloseable {
        final int headDim;
        final double theta;
        final int[] positions;
        final DeviceBuffer posRow;
        final DeviceBuffer cos;
        final DeviceBuffer sin;

        private RotaryTables(int headDim, double theta, int[] positions, DeviceBuffer posRow, DeviceBuffer cos, DeviceBuffer sin) {
            this.headDim = headDim;
            this.theta = theta;
            this.positions = positions;
            this.posRow = posRow;
            this.cos = cos;
            this.sin = sin;
        }

        boolean matches(int d, double th, int[] pos) {
            return d == headDim && th == theta && Arrays.equals(pos, positions);
        }

        static RotaryTables build(CudaBackend backend, int headDim, double theta, int[] positions) {
            int half = headDim / 2;
            Map<Integer, Integer> rowOf = new HashMap<>();
            int[] posRow = new int[positions.length];
            for (int t = 0; t < positions.length; t++) {
                if (positions[t] < 0) {
                    throw new IllegalArgumentException("negative position " + positions[t]);
                }
                posRow[t] = rowOf.computeIfAbsent(positions[t], p -> rowOf.size());
            }
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / headDim));
            }
            float[] cos = new float[rowOf.size() * half];
            float[] sin = new float[rowOf.size() * half];
            for (Map.Entry<Integer, Integer> e : rowOf.entrySet()) {
                int p = e.getKey();
                int row = e.getValue();
                for (int i = 0; i < half; i++) {
                    float angle = p * invFreq[i];
                    cos[row * half + i] = (float) Math.cos(angle);
                    sin[row * half + i] = (float) Math.sin(angle);
                }
            }
            DeviceBuffer pr = backend.uploadScratch(posRow, "rotary position rows");
            DeviceBuffer c = null;
            try {
                c = backend.uploadScratch(cos, "rotary cos");
                DeviceBuffer s = backend.uploadScratch(sin, "rotary sin");
                return new RotaryTables(headDim, theta, positions.clone(), pr, c, s);
            } catch (RuntimeException e) {
                pr.close();
                if (c != null) {
                    c.close();
                }
                throw e;
            }
        }

        @Override
        public void close() {
            posRow.close();
            cos.close();
            sin.close();
        }
    }
}
