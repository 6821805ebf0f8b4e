package io.whittle.methods.visual;

import io.whittle.compute.VisualLayout;
import io.whittle.model.ModelSpec;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Visual-token FLOPs of a LLaVA language model's prefill, counted as the YOPO paper does (FLOPs = 2 x MAC, the
 * n visual tokens only; text, vision tower, projector and lm_head excluded):
 * <pre>
 * dense  = L x [ n (2 d H hd + 4 d KV hd + 2 H hd d + 6 d I) + 4 n^2 hd H ]          (= L [n (8 d^2 + 6 d I) + 4 n^2 d] for MHA)
 * pruned = sum over l &lt; drop of [ n (2 d hd h_l + 4 d hd kv_l + 2 hd h_l d + 6 d I f) + 4 P_w hd h_l ]
 * </pre>
 * with h_l the heads kept in layer l, kv_l their key/value heads, P_w the allowed (query, key) pairs of the
 * w x w window on the grid and f the FFN fraction visual tokens use. LLaVA-1.5-7B: 7.6343e12; 13B: 1.48881e13.
 */
public final class VisualFlops {

    /** The sizes the count needs. */
    public record Dims(int layers, int hidden, int heads, int kvHeads, int headDim, int intermediate, int gridRows, int gridCols) {
        public int tokens() {
            return gridRows * gridCols;
        }

        public static Dims of(ModelSpec spec) {
            JsonNode vc = spec.config().path("vision_config");
            int image = vc.has("image_size") ? vc.get("image_size").asInt() : 224;
            int patch = vc.has("patch_size") ? vc.get("patch_size").asInt() : 32;
            int grid = image / patch;
            return new Dims(spec.numLayers(), spec.hiddenSize(), spec.numHeads(), spec.numKvHeads(), spec.headDim(),
                    spec.intermediateSize(), grid, grid);
        }
    }

    /**
     * Dense and pruned counts, and each strategy alone (window only, heads only, drop only, FFN only) to show
     * where the savings come from; {@code visualKvFraction} is the share of the visual KV cache still kept.
     */
    public record Result(double dense, double pruned, double windowOnly, double headsOnly, double dropOnly, double ffnOnly,
                         long windowPairs, double visualKvFraction) {
        public double fraction() {
            return pruned / dense;
        }

        public ObjectNode toJson() {
            ObjectNode n = JsonMapper.builder().build().createObjectNode();
            n.put("dense", dense);
            n.put("pruned", pruned);
            n.put("pruned_fraction", fraction());
            n.put("reduction", 1 - fraction());
            ObjectNode s = n.putObject("each_strategy_alone");
            s.put("window", windowOnly);
            s.put("heads", headsOnly);
            s.put("drop_layer", dropOnly);
            s.put("ffn", ffnOnly);
            n.put("window_pairs", windowPairs);
            n.put("visual_kv_cache_fraction", visualKvFraction);
            n.put("formula", "FLOPs = 2 x MAC over the visual tokens only; dense = L x [n (8 d^2 + 6 d I) + 4 n^2 d] for MHA; "
                    + "pruned = sum over l < drop_layer of [n (8 d hd h_l + 6 d I f) + 4 P_w hd h_l] (GQA: k/v scale with kept kv heads)");
            return n;
        }
    }

    private VisualFlops() {
    }

    /** Linear (QKVO + FFN) FLOPs of one visual token in one layer with h query and kv key/value heads doing work. */
    private static double perToken(Dims m, double h, double kv, double ffnFraction) {
        double d = m.hidden(), hd = m.headDim();
        return 2 * d * hd * h + 4 * d * hd * kv + 2 * hd * h * d + 6 * d * m.intermediate() * ffnFraction;
    }

    public static double dense(Dims m) {
        double n = m.tokens();
        return m.layers() * (n * perToken(m, m.heads(), m.kvHeads(), 1.0) + 4 * n * n * m.headDim() * m.heads());
    }

    /**
     * @param keptHeads   h_l per layer (length L; fractional for an average)
     * @param keptKvHeads kv_l per layer (length L)
     */
    public static Result compute(Dims m, int window, int dropLayer, double[] keptHeads, double[] keptKvHeads, double ffnFraction) {
        if (keptHeads.length != m.layers() || keptKvHeads.length != m.layers()) {
            throw new IllegalArgumentException("kept heads for " + keptHeads.length + " layers, the model has " + m.layers());
        }
        if (dropLayer < 0 || dropLayer > m.layers()) {
            throw new IllegalArgumentException("drop_layer " + dropLayer + " is outside 0.." + m.layers());
        }
        if (!(ffnFraction > 0 && ffnFraction <= 1)) {
            throw new IllegalArgumentException("ffn_visual_fraction must be in (0, 1], got " + ffnFraction);
        }
        long pairs = VisualLayout.ofWindow(0, m.gridRows(), m.gridCols(), window).allowedVisualPairs();
        double n = m.tokens(), hd = m.headDim(), heads = m.heads();
        double denseAttention = 4 * n * n * hd * heads;
        double denseLinear = n * perToken(m, heads, m.kvHeads(), 1.0);
        double pruned = 0, windowOnly = 0, headsOnly = 0, ffnOnly = 0, kv = 0;
        for (int l = 0; l < m.layers(); l++) {
            windowOnly += denseLinear + 4 * pairs * hd * heads;
            headsOnly += n * perToken(m, keptHeads[l], keptKvHeads[l], 1.0) + 4 * n * n * hd * keptHeads[l];
            ffnOnly += n * perToken(m, heads, m.kvHeads(), ffnFraction) + denseAttention;
            if (l < dropLayer) {
                pruned += n * perToken(m, keptHeads[l], keptKvHeads[l], ffnFraction) + 4 * pairs * hd * keptHeads[l];
                kv += keptKvHeads[l];
            }
        }
        double dropOnly = dropLayer * (denseLinear + denseAttention);
        return new Result(dense(m), pruned, windowOnly, headsOnly, dropOnly, ffnOnly, pairs,
                kv / ((double) m.layers() * m.kvHeads()));
    }

    /** Kept heads from a vote mask: counts per layer and the kv heads they need. */
    public static double[][] counts(boolean[][] keep, int heads, int kvHeads) {
        int group = heads / kvHeads;
        double[] h = new double[keep.length];
        double[] kv = new double[keep.length];
        for (int l = 0; l < keep.length; l++) {
            boolean[] kvUsed = new boolean[kvHeads];
            for (int i = 0; i < keep[l].length; i++) {
                if (keep[l][i]) {
                    h[l]++;
                    kvUsed[i / group] = true;
                }
            }
            for (boolean b : kvUsed) {
                kv[l] += b ? 1 : 0;
            }
        }
        return new double[][] {h, kv};
    }
}
