package io.whittle.forward;

import io.whittle.compute.Backend;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.TensorShape;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Forward throughput of one decoder layer of a real model shape with random weights, and the backend's dense
 * matrix-multiply rate measured in the same run, so the engine's overhead over raw GEMM is visible on a noisy
 * machine: efficiency = (useful model FLOP/s) / (GEMM FLOP/s).
 */
public final class ForwardBenchmark {

    /** The measured figures. */
    public record Result(String shape, int layer, boolean moeLayer, int sequences, int seqLen, int repeats,
                         double medianSeconds, double tokensPerSecond, double flopsPerToken, double modelGflops,
                         double gemmGflops, int gemmSize, double efficiency, long peakHostBytes) {
    }

    private ForwardBenchmark() {
    }

    /** Useful FLOPs per token of layer {@code l} at sequence length {@code seqLen} (causal attention counted half). */
    public static double flopsPerToken(ModelSpec spec, int l, int seqLen) {
        double h = spec.hiddenSize();
        double q = (double) spec.numHeads() * spec.headDim();
        double kv = (double) spec.numKvHeads() * spec.headDim();
        double f = 2 * (h * q + 2 * h * kv + q * h);
        f += 2.0 * spec.numHeads() * spec.headDim() * (seqLen + 1); // QK^T and PV over the causal prefix, on average
        if (spec.isMoeLayer(l)) {
            ModelSpec.Moe moe = spec.moe();
            f += 2 * h * moe.experts();
            f += moe.topK() * 2 * 3 * h * moe.expertIntermediate();
            f += 2 * 3 * h * moe.sharedIntermediate();
        } else {
            f += 2 * 3 * h * spec.intermediateSize();
        }
        return f;
    }

    /** Dense fp32 GEMM rate of the backend: median of {@code runs} n x n x n products after two warm-ups. */
    public static double gemmGflops(Backend backend, int n, int runs) {
        try (FloatTensor ha = FloatTensor.zeros(n, n); FloatTensor hb = FloatTensor.zeros(n, n)) {
            fillRandom(ha, 1, 1.0f);
            fillRandom(hb, 2, 1.0f);
            return gemmGflops(backend, ha, hb, runs);
        }
    }

    private static double gemmGflops(Backend backend, FloatTensor ha, FloatTensor hb, int runs) {
        int n = ha.rows();
        // fill on the host and upload: toHost is a copy on device backends
        try (Tensor a = backend.upload(ha); Tensor b = backend.upload(hb); Tensor c = backend.allocate(Shape.of(n, n))) {
            backend.matmul(a, false, b, false, 1f, 0f, c);
            backend.matmul(a, false, b, false, 1f, 0f, c);
            double[] t = new double[runs];
            for (int i = 0; i < runs; i++) {
                long t0 = System.nanoTime();
                backend.matmul(a, false, b, false, 1f, 0f, c);
                t[i] = (System.nanoTime() - t0) / 1e9;
            }
            Arrays.sort(t);
            return 2.0 * n * n * n / t[runs / 2] / 1e9;
        }
    }

    public static Result run(String shapeName, ModelSpec spec, int layer, Backend backend, int sequences, int seqLen, int repeats,
                             HostAllocator alloc) {
        List<String> names = new DecoderLayer(spec, layer).names().allTensors();
        Map<String, TensorShape> shapes = new LinkedHashMap<>();
        for (TensorShape t : spec.expectedTensors()) {
            shapes.put(t.name(), t);
        }
        Map<String, FloatTensor> tensors = new LinkedHashMap<>();
        try {
            long seed = 7;
            for (String n : names) {
                TensorShape t = shapes.get(n);
                FloatTensor x = alloc.allocate(t.shape(), n);
                tensors.put(n, x);
                boolean norm = n.endsWith("norm.weight") || n.endsWith("layernorm.weight");
                fillRandom(x, seed++, norm ? 0f : (float) (1.0 / Math.sqrt(t.shape().cols())));
                if (norm) {
                    x.fill(1f);
                }
            }
        } catch (RuntimeException | OutOfMemoryError e) {
            tensors.values().forEach(FloatTensor::close);
            throw e;
        }
        List<int[]> seqs = new ArrayList<>();
        for (int s = 0; s < sequences; s++) {
            seqs.add(new int[seqLen]);
        }
        TokenBatch batch = new TokenBatch(seqs);
        DecoderLayer decoder = new DecoderLayer(spec, layer);
        try (LayerWeights weights = LayerWeights.of(layer, tensors, DType.F32);
             FloatTensor hiddenHost = filledHidden(alloc, batch.totalTokens(), spec.hiddenSize());
             Tensor hidden = backend.upload(hiddenHost);
             Tensor out = backend.allocate(hiddenHost.shape());
             DecoderLayer.Uploaded uploaded = DecoderLayer.upload(backend, weights)) {
            decoder.forward(backend, uploaded, hidden, out, batch, LayerwisePipeline.DEFAULT_GROUP_TOKENS, null); // warm-up
            double[] t = new double[repeats];
            for (int i = 0; i < repeats; i++) {
                long t0 = System.nanoTime();
                decoder.forward(backend, uploaded, hidden, out, batch, LayerwisePipeline.DEFAULT_GROUP_TOKENS, null);
                t[i] = (System.nanoTime() - t0) / 1e9;
            }
            Arrays.sort(t);
            double median = t[repeats / 2];
            int tokens = batch.totalTokens();
            double fpt = flopsPerToken(spec, layer, seqLen);
            double modelGflops = fpt * tokens / median / 1e9;
            int gemmN = 2048;
            double gemm = gemmGflops(backend, gemmN, 5);
            return new Result(shapeName, layer, spec.isMoeLayer(layer), sequences, seqLen, repeats, median, tokens / median, fpt,
                    modelGflops, gemm, gemmN, modelGflops / gemm, alloc.peakBytes());
        }
    }

    private static FloatTensor filledHidden(HostAllocator alloc, int rows, int cols) {
        FloatTensor h = alloc.allocate(Shape.of(rows, cols), "hidden");
        fillRandom(h, 99, 1f); // before the upload: on a device backend the upload is a copy
        return h;
    }

    /** Fast deterministic uniform fill with standard deviation {@code std} (xorshift; Gaussian quality is not needed). */
    static void fillRandom(FloatTensor t, long seed, float std) {
        long s = seed * 0x9E3779B97F4A7C15L + 1;
        float scale = (float) (std * Math.sqrt(3.0)) / (1 << 23);
        int chunk = 1 << 16;
        float[] buf = new float[chunk];
        for (long i = 0; i < t.numel(); i += chunk) {
            int n = (int) Math.min(chunk, t.numel() - i);
            for (int j = 0; j < n; j++) {
                s ^= s << 13;
                s ^= s >>> 7;
                s ^= s << 17;
                buf[j] = ((int) (s >>> 40) - (1 << 23)) * scale;
            }
            t.copyFrom(buf, 0, i, n);
        }
    }
}
