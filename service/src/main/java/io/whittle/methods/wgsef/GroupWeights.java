package io.whittle.methods.wgsef;

import java.util.Locale;

/**
 * The {@code weights} parameter: the group weight d_j of WGSEF (wgsef.md §1.3, "How to choose the weights").
 * <ul>
 *   <li>{@code uniform} (default): d_j = 1, groups are ranked by their plain norm;</li>
 *   <li>{@code size}: d_j = |g_j|, the number of parameters in the group, so groups are ranked by RMS magnitude;</li>
 *   <li>{@code cost}: d_j = the multiply-add FLOPs per token that keeping the group costs, 2 |g_j| (every weight
 *       is one multiply and one add per token in a dense or N:M kernel).</li>
 * </ul>
 * Every partition {@link GroupPartition} builds has groups of one size, so within one partition the three choices
 * differ only by a constant factor, which is the same as rescaling lambda (S_{k,cd} = c S_{k,d}); the layer-wise
 * solver measures lambda relative to d, so its result does not depend on the choice. They start to matter when
 * groups of different sizes compete, which is what the per-group arrays of {@link Wgsef} support.
 */
public enum GroupWeights {
    UNIFORM, SIZE, COST;

    public static GroupWeights parse(String text) {
        if (text == null || text.isBlank()) {
            return UNIFORM;
        }
        return switch (text.trim().toLowerCase(Locale.ROOT)) {
            case "uniform" -> UNIFORM;
            case "size" -> SIZE;
            case "cost" -> COST;
            default -> throw new IllegalArgumentException("weights: unknown value '" + text + "'; expected uniform, size or cost");
        };
    }

    /** The weight d of every group of {@code partition}. */
    public double weight(GroupPartition partition) {
        return switch (this) {
            case UNIFORM -> 1.0;
            case SIZE -> partition.groupSize();
            case COST -> 2.0 * partition.groupSize();
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
