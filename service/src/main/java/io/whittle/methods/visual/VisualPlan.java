package io.whittle.methods.visual;

import io.whittle.forward.vision.VisualPruning;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The result of visual-prune, written as {@code visual-plan.json}: window, drop layer, the heads that keep
 * visual work in every layer (index lists; layers from the drop layer on do no visual work whatever they list),
 * the alpha and vote that chose them, the per-layer, per-head mean visual/non-visual attention ratios, and the
 * FFN fraction (accounted only).
 */
public record VisualPlan(int layers, int heads, int gridRows, int gridCols, int window, int dropLayer, int keepLayers,
                         double alpha, double vote, String scoreRows, Double headsKeptTarget, boolean[][] keepHeads,
                         double[][] meanRatios, double ffnVisualFraction) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    public VisualPruning pruning() {
        return new VisualPruning(window, dropLayer, keepHeads);
    }

    public double averageKeptHeads() {
        return HeadSelection.averageKept(keepHeads);
    }

    public static int[] indices(boolean[] flags) {
        return java.util.stream.IntStream.range(0, flags.length).filter(i -> flags[i]).toArray();
    }

    public ObjectNode toJson() {
        ObjectNode n = JSON.createObjectNode();
        n.put("method", "visual-prune");
        n.put("layers", layers);
        n.put("heads", heads);
        n.putArray("grid").add(gridRows).add(gridCols);
        n.put("window", window);
        n.put("drop_layer", dropLayer);
        n.put("keep_layers", keepLayers);
        n.put("alpha", alpha);
        n.put("vote", vote);
        n.put("score_rows", scoreRows);
        if (headsKeptTarget != null) {
            n.put("heads_kept_target", headsKeptTarget);
        }
        n.put("average_kept_heads", averageKeptHeads());
        ArrayNode kept = n.putArray("kept_heads");
        for (boolean[] row : keepHeads) {
            ArrayNode a = kept.addArray();
            for (int h : indices(row)) {
                a.add(h);
            }
        }
        ArrayNode ratios = n.putArray("mean_ratios");
        for (double[] row : meanRatios) {
            ArrayNode a = ratios.addArray();
            for (double v : row) {
                a.add(v);
            }
        }
        n.put("ffn_visual_fraction", ffnVisualFraction);
        n.put("ffn_note", "the sparse visual FFN is accounted in the FLOPs only: the paper applies it after re-training");
        return n;
    }

    /** Reads the kept heads, window and drop layer of a visual-plan.json (for FLOPs without a run). */
    public static VisualPlan read(Path file) {
        JsonNode n;
        try {
            n = JSON.readTree(Files.readString(file));
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("plan " + file + " cannot be read: " + e.getMessage(), e);
        }
        for (String f : new String[] {"layers", "heads", "window", "drop_layer", "kept_heads"}) {
            if (!n.has(f)) {
                throw new IllegalArgumentException("plan " + file + " has no field '" + f + "'");
            }
        }
        int layers = n.get("layers").asInt(), heads = n.get("heads").asInt();
        JsonNode kept = n.get("kept_heads");
        if (!kept.isArray() || kept.size() != layers) {
            throw new IllegalArgumentException("plan " + file + ": kept_heads must list " + layers + " layers");
        }
        boolean[][] keep = new boolean[layers][heads];
        for (int l = 0; l < layers; l++) {
            for (JsonNode h : kept.get(l)) {
                if (h.asInt() < 0 || h.asInt() >= heads) {
                    throw new IllegalArgumentException("plan " + file + ": head " + h + " in layer " + l + " is outside 0.." + (heads - 1));
                }
                keep[l][h.asInt()] = true;
            }
        }
        int gr = n.has("grid") ? n.get("grid").get(0).asInt() : 24, gc = n.has("grid") ? n.get("grid").get(1).asInt() : 24;
        return new VisualPlan(layers, heads, gr, gc, n.get("window").asInt(), n.get("drop_layer").asInt(),
                n.path("keep_layers").asInt(2), n.path("alpha").asDouble(0), n.path("vote").asDouble(0.4),
                n.path("score_rows").asString("text"), null, keep, new double[layers][heads],
                n.path("ffn_visual_fraction").asDouble(1.0));
    }
}
