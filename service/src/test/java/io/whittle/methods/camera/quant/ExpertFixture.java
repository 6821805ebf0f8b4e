package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * One SwiGLU expert quantized with the CAMERA-Q building blocks the way the layer pipeline composes them:
 * widths by energy rank, permutation, per-row widths for gate/up (one Hessian from the routed tokens, factored once),
 * column slices for down (Hessian from the intermediate activations).
 */
final class ExpertFixture {

    final int f;
    final int d;
    final float[] gate;
    final float[] up;
    final float[] down;
    final float[] tokens; // routed tokens [n, d]
    final int n;
    final int[] bits;

    ExpertFixture(long seed, int f, int d, int n) {
        Random rnd = new Random(seed);
        this.f = f;
        this.d = d;
        this.n = n;
        this.gate = QuantTestData.weights(rnd, f, d);
        this.up = QuantTestData.weights(rnd, f, d);
        this.down = QuantTestData.weights(rnd, d, f);
        this.tokens = QuantTestData.correlatedInputs(rnd, Math.max(n, 1), d);
        float[] energies = new float[f];
        for (int j = 0; j < f; j++) {
            energies[j] = rnd.nextFloat();
        }
        this.bits = BitAllocation.defaults().assign(energies);
    }

    /** Intermediate activations silu(x W_gate^T) * (x W_up^T) [n, f] for weights gate/up [f, d]. */
    static float[] intermediate(float[] x, int n, float[] gate, float[] up, int f, int d) {
        float[] h = new float[n * f];
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < f; j++) {
                double g = 0;
                double u = 0;
                for (int c = 0; c < d; c++) {
                    g += (double) x[t * d + c] * gate[j * d + c];
                    u += (double) x[t * d + c] * up[j * d + c];
                }
                h[t * f + j] = (float) (g / (1 + Math.exp(-g)) * u);
            }
        }
        return h;
    }

    /** Expert outputs [n, d] in double for the given weights (original order). */
    double[] output(float[] g, float[] u, float[] dn) {
        float[] h = intermediate(tokens, n, g, u, f, d);
        double[] y = new double[n * d];
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < d; r++) {
                double s = 0;
                for (int j = 0; j < f; j++) {
                    s += (double) h[t * f + j] * dn[r * f + j];
                }
                y[t * d + r] = s;
            }
        }
        return y;
    }

    /** Quantizes the expert; {@code gptq == false} uses RTN; {@code calibrated == false} gives GPTQ no tokens. */
    QuantizedExpert quantize(boolean gptq, boolean calibrated, int groupSize, boolean symmetric) {
        HostAllocator a = HostAllocator.root();
        MicroExpertPermutation p = MicroExpertPermutation.byBits(bits);
        QuantLayout rowLayout = p.rowLayout(d, groupSize, symmetric, ScaleFormat.F16);
        QuantLayout colLayout = p.columnLayout(d, groupSize, symmetric, ScaleFormat.F16);
        Map<String, QuantizedMatrix> rows = new LinkedHashMap<>();
        Map<String, QuantizedMatrix> cols = new LinkedHashMap<>();
        try (FloatTensor g0 = QuantTestData.tensor(gate, f, d); FloatTensor u0 = QuantTestData.tensor(up, f, d);
             FloatTensor d0 = QuantTestData.tensor(down, d, f);
             FloatTensor g = p.permuteRows(g0, a); FloatTensor u = p.permuteRows(u0, a); FloatTensor dn = p.permuteColumns(d0, a)) {
            if (!gptq) {
                rows.put("gate_proj", RtnQuantizer.quantize(g, rowLayout));
                rows.put("up_proj", RtnQuantizer.quantize(u, rowLayout));
                cols.put("down_proj", RtnQuantizer.quantize(dn, colLayout));
            } else {
                GptqQuantizer q = new GptqQuantizer(0.01, 32, a);
                try (Hessian hx = new Hessian(d); Hessian hh = new Hessian(f)) {
                    if (calibrated) {
                        try (FloatTensor x = QuantTestData.tensor(tokens, n, d);
                             FloatTensor inter = QuantTestData.tensor(intermediate(tokens, n, g.toArray(), u.toArray(), f, d), n, f)) {
                            hx.add(x);
                            hh.add(inter);
                        }
                    }
                    try (InverseHessian fx = q.factor(hx)) {
                        rows.put("gate_proj", q.quantize(g, rowLayout, fx).matrix());
                        rows.put("up_proj", q.quantize(u, rowLayout, fx).matrix());
                    }
                    cols.put("down_proj", q.quantize(dn, colLayout, hh).matrix());
                }
            }
        }
        return new QuantizedExpert(p, rows, cols);
    }
}
