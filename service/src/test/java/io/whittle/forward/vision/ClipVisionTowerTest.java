package io.whittle.forward.vision;

import static io.whittle.testing.Numerics.relErr;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.compute.cpu.Erf;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.node.ObjectNode;

/**
 * The CLIP vision tower and projector against an independent fp64 computation written from the transformers
 * definitions (direct convolution, LayerNorm, softmax attention, quick_gelu, hidden_states indexing, erf GELU) on
 * a tiny random CLIP config: 56x56 image, patch 14 (4x4 grid), hidden 32, 2 heads, 3 layers. Relative error
 * below 1e-5 (fp32 against fp64).
 */
class ClipVisionTowerTest {

    @TempDir
    Path dir;

    static ObjectNode tinyConfig(SyntheticModels.Request r, Object featureLayer) {
        ObjectNode c = SyntheticModels.config(r);
        ObjectNode vc = (ObjectNode) c.get("vision_config");
        vc.put("hidden_size", 32);
        vc.put("intermediate_size", 48);
        vc.put("num_hidden_layers", 3);
        vc.put("num_attention_heads", 2);
        vc.put("image_size", 56);
        vc.put("patch_size", 14);
        if (featureLayer instanceof Integer i) {
            c.put("vision_feature_layer", i);
        } else {
            var arr = c.putArray("vision_feature_layer");
            for (int i : (int[]) featureLayer) {
                arr.add(i);
            }
        }
        return c;
    }

    static SyntheticModels.Request request() {
        return new SyntheticModels.Request(Family.LLAVA, 2, 24, 40, 0, 0, 0, 0, 2, 2, 48, 11, DType.F32, 1);
    }

    private static double[] t(Checkpoint ck, String name) {
        try (FloatTensor f = ck.readFloat(name, HostAllocator.root())) {
            float[] a = f.toArray();
            double[] d = new double[a.length];
            for (int i = 0; i < a.length; i++) {
                d[i] = a[i];
            }
            return d;
        }
    }

    private static double[] linear(double[] x, int n, int in, double[] w, double[] b, int out) {
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int j = 0; j < in; j++) {
                    s += x[i * in + j] * w[o * in + j];
                }
                y[i * out + o] = s;
            }
        }
        return y;
    }

    private static double[] layerNorm(double[] x, int n, int d, double[] w, double[] b) {
        double[] y = new double[x.length];
        for (int i = 0; i < n; i++) {
            double mean = 0, var = 0;
            for (int j = 0; j < d; j++) {
                mean += x[i * d + j];
            }
            mean /= d;
            for (int j = 0; j < d; j++) {
                var += Math.pow(x[i * d + j] - mean, 2);
            }
            var /= d;
            for (int j = 0; j < d; j++) {
                y[i * d + j] = (x[i * d + j] - mean) / Math.sqrt(var + 1e-5) * w[j] + b[j];
            }
        }
        return y;
    }

    /** hidden_states of the CLIP vision model, all of them, fp64. */
    static double[][] referenceHiddenStates(Checkpoint ck, float[] pixels) {
        String v = "vision_tower.vision_model.";
        int d = 32, p = 14, g = 4, n = 17, heads = 2, hd = 16, inter = 48;
        double[] conv = t(ck, v + "embeddings.patch_embedding.weight");
        double[] cls = t(ck, v + "embeddings.class_embedding");
        double[] pos = t(ck, v + "embeddings.position_embedding.weight");
        double[] h = new double[n * d];
        for (int j = 0; j < d; j++) {
            h[j] = cls[j] + pos[j];
        }
        for (int pr = 0; pr < g; pr++) {
            for (int pc = 0; pc < g; pc++) {
                int tok = 1 + pr * g + pc;
                for (int o = 0; o < d; o++) {
                    double s = 0;
                    for (int c = 0; c < 3; c++) {
                        for (int ky = 0; ky < p; ky++) {
                            for (int kx = 0; kx < p; kx++) {
                                s += conv[((o * 3 + c) * p + ky) * p + kx] * pixels[(c * 56 + pr * p + ky) * 56 + pc * p + kx];
                            }
                        }
                    }
                    h[tok * d + o] = s + pos[tok * d + o];
                }
            }
        }
        double[][] states = new double[4][];
        h = layerNorm(h, n, d, t(ck, v + "pre_layrnorm.weight"), t(ck, v + "pre_layrnorm.bias"));
        states[0] = h.clone();
        for (int l = 0; l < 3; l++) {
            String lp = v + "encoder.layers." + l + ".";
            double[] x = layerNorm(h, n, d, t(ck, lp + "layer_norm1.weight"), t(ck, lp + "layer_norm1.bias"));
            double[] q = linear(x, n, d, t(ck, lp + "self_attn.q_proj.weight"), t(ck, lp + "self_attn.q_proj.bias"), d);
            double[] k = linear(x, n, d, t(ck, lp + "self_attn.k_proj.weight"), t(ck, lp + "self_attn.k_proj.bias"), d);
            double[] vv = linear(x, n, d, t(ck, lp + "self_attn.v_proj.weight"), t(ck, lp + "self_attn.v_proj.bias"), d);
            double[] a = new double[n * d];
            for (int hh = 0; hh < heads; hh++) {
                for (int i = 0; i < n; i++) {
                    double[] s = new double[n];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < n; j++) {
                        for (int c = 0; c < hd; c++) {
                            s[j] += q[i * d + hh * hd + c] * k[j * d + hh * hd + c];
                        }
                        s[j] /= Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    for (int j = 0; j < n; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j < n; j++) {
                        for (int c = 0; c < hd; c++) {
                            a[i * d + hh * hd + c] += s[j] / sum * vv[j * d + hh * hd + c];
                        }
                    }
                }
            }
            double[] o = linear(a, n, d, t(ck, lp + "self_attn.out_proj.weight"), t(ck, lp + "self_attn.out_proj.bias"), d);
            for (int i = 0; i < h.length; i++) {
                h[i] += o[i];
            }
            x = layerNorm(h, n, d, t(ck, lp + "layer_norm2.weight"), t(ck, lp + "layer_norm2.bias"));
            double[] m = linear(x, n, d, t(ck, lp + "mlp.fc1.weight"), t(ck, lp + "mlp.fc1.bias"), inter);
            for (int i = 0; i < m.length; i++) {
                m[i] = m[i] / (1 + Math.exp(-1.702 * m[i]));
            }
            double[] y = linear(m, n, inter, t(ck, lp + "mlp.fc2.weight"), t(ck, lp + "mlp.fc2.bias"), d);
            for (int i = 0; i < h.length; i++) {
                h[i] += y[i];
            }
            states[l + 1] = h.clone();
        }
        return states;
    }


    @Test
    void towerAndProjectorMatchAnIndependentFp64Computation() {
        Path model = dir.resolve("tiny");
        ModelSpec spec = SyntheticModels.write(request(), tinyConfig(request(), -2), model);
        Random random = new Random(5);
        float[] pixels = new float[3 * 56 * 56];
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = (float) random.nextGaussian();
        }
        try (Checkpoint ck = Checkpoint.open(model); CpuBackend cpu = new CpuBackend();
             FloatTensor px = FloatTensor.of(Shape.of(3, 56, 56), pixels)) {
            ClipVisionTower tower = new ClipVisionTower(spec, ck);
            assertThat(tower.tokens()).isEqualTo(16);
            double[][] states = referenceHiddenStates(ck, pixels);
            // hidden_states[-2] of 4 = index 2 = output of encoder layer 1; CLS (row 0) dropped
            double[] expected = java.util.Arrays.copyOfRange(states[2], 32, 17 * 32);
            try (FloatTensor features = tower.features(cpu, px, HostAllocator.root())) {
                assertThat(features.shape()).isEqualTo(Shape.of(16, 32));
                assertThat(relErr(features.toArray(), expected)).isLessThan(1e-5);
                // the projector: Linear(bias) - GELU(erf) - Linear(bias)
                double[] mid = linear(expected, 16, 32, t(ck, "multi_modal_projector.linear_1.weight"),
                        t(ck, "multi_modal_projector.linear_1.bias"), 24);
                for (int i = 0; i < mid.length; i++) {
                    mid[i] = 0.5 * mid[i] * (1 + Erf.erf(mid[i] / Math.sqrt(2)));
                }
                double[] embeds = linear(mid, 16, 24, t(ck, "multi_modal_projector.linear_2.weight"),
                        t(ck, "multi_modal_projector.linear_2.bias"), 24);
                try (FloatTensor projected = tower.project(cpu, features, HostAllocator.root())) {
                    assertThat(projected.shape()).isEqualTo(Shape.of(16, 24));
                    assertThat(relErr(projected.toArray(), embeds)).isLessThan(1e-5);
                }
            }
        }
    }

    @Test
    void severalFeatureLayersAreConcatenatedInOrder() {
        Path model = dir.resolve("multi");
        ModelSpec spec = SyntheticModels.write(request(), tinyConfig(request(), new int[] {-1, 0}), model);
        Random random = new Random(6);
        float[] pixels = new float[3 * 56 * 56];
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = (float) random.nextGaussian();
        }
        try (Checkpoint ck = Checkpoint.open(model); CpuBackend cpu = new CpuBackend();
             FloatTensor px = FloatTensor.of(Shape.of(3, 56, 56), pixels)) {
            ClipVisionTower tower = new ClipVisionTower(spec, ck);
            double[][] states = referenceHiddenStates(ck, pixels);
            double[] expected = new double[16 * 64];
            for (int tok = 0; tok < 16; tok++) {
                for (int j = 0; j < 32; j++) {
                    expected[tok * 64 + j] = states[3][(tok + 1) * 32 + j];
                    expected[tok * 64 + 32 + j] = states[0][(tok + 1) * 32 + j];
                }
            }
            try (FloatTensor features = tower.features(cpu, px, HostAllocator.root())) {
                assertThat(features.shape()).isEqualTo(Shape.of(16, 64));
                assertThat(relErr(features.toArray(), expected)).isLessThan(1e-5);
            }
        }
    }

    @Test
    void wrongPixelShapeAndUnsupportedStrategyAreClearErrors() {
        Path model = dir.resolve("bad");
        ObjectNode cfg = tinyConfig(request(), -2);
        ModelSpec spec = SyntheticModels.write(request(), cfg, model);
        try (Checkpoint ck = Checkpoint.open(model); CpuBackend cpu = new CpuBackend(); FloatTensor px = FloatTensor.zeros(3, 28, 28)) {
            ClipVisionTower tower = new ClipVisionTower(spec, ck);
            assertThatThrownBy(() -> tower.features(cpu, px, HostAllocator.root()))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("pixel values must be [3, 56, 56]");
            cfg.put("vision_feature_select_strategy", "full");
            ModelSpec full = io.whittle.model.ModelSpecs.fromConfig(cfg, "test");
            assertThatThrownBy(() -> new ClipVisionTower(full, ck)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("vision_feature_select_strategy 'full' is not supported");
        }
    }
}
