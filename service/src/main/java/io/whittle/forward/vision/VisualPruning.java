package io.whittle.forward.vision;

import io.whittle.compute.VisualLayout;

/**
 * The static visual-computation pruning of a model (YOPO): the w x w grid window of visual queries, which
 * attention heads keep their visual work in each layer ({@code keepHeads[layer][head]}), and the layer from
 * which visual tokens are removed (layers >= dropLayer do no visual work; dropLayer = layers means never).
 */
public record VisualPruning(int window, int dropLayer, boolean[][] keepHeads) {

    public VisualPruning {
        VisualLayout.radiusOf(window);
        if (dropLayer < 0 || dropLayer > keepHeads.length) {
            throw new IllegalArgumentException("drop layer " + dropLayer + " is outside 0.." + keepHeads.length);
        }
    }

    /** No pruning except the window: every head kept, visual tokens never dropped. */
    public static VisualPruning windowOnly(int window, int layers, int heads) {
        boolean[][] keep = new boolean[layers][heads];
        for (boolean[] row : keep) {
            java.util.Arrays.fill(row, true);
        }
        return new VisualPruning(window, layers, keep);
    }

    /** The heads that do visual work in layer l (none from the drop layer on). */
    public boolean[] activeHeads(int layer) {
        if (layer >= dropLayer) {
            return new boolean[keepHeads[layer].length];
        }
        return keepHeads[layer].clone();
    }
}
