package io.whittle.methods.camera;

import java.util.Arrays;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/** JSON pieces of the CAMERA reports. */
final class CameraReports {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private CameraReports() {
    }

    static ObjectNode object() {
        return JSON.createObjectNode();
    }

    /** Puts a number, or null when it is not finite (JSON has no NaN or Infinity). */
    static void putFinite(ObjectNode node, String field, double value) {
        if (Double.isFinite(value)) {
            node.put(field, value);
        } else {
            node.putNull(field);
        }
    }

    /**
     * Min, max, mean and median of the energies, how many are exactly 0, and (given a prune mask) the share of the
     * layer's total energy that the pruned micro-experts held.
     */
    static ObjectNode energyStats(ObjectNode node, double[] energy, boolean[] pruned) {
        double min = Double.POSITIVE_INFINITY, max = 0, sum = 0, prunedSum = 0;
        long zeros = 0;
        for (int j = 0; j < energy.length; j++) {
            double e = energy[j];
            min = Math.min(min, e);
            max = Math.max(max, e);
            sum += e;
            if (e == 0) {
                zeros++;
            }
            if (pruned != null && pruned[j]) {
                prunedSum += e;
            }
        }
        double[] sorted = energy.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n == 0 ? 0 : (n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]));
        putFinite(node, "min", n == 0 ? 0 : min);
        putFinite(node, "max", max);
        putFinite(node, "mean", n == 0 ? 0 : sum / n);
        putFinite(node, "median", median);
        putFinite(node, "total", sum);
        node.put("zero_count", zeros);
        if (pruned != null) {
            putFinite(node, "pruned_energy_fraction", sum > 0 ? prunedSum / sum : 0);
        }
        return node;
    }

    /** Puts numbers (integral ones as integers) and strings of a report map. */
    static void putAll(ObjectNode node, java.util.Map<String, Object> values) {
        values.forEach((k, v) -> {
            if (v instanceof Long || v instanceof Integer) {
                node.put(k, ((Number) v).longValue());
            } else if (v instanceof Number num) {
                putFinite(node, k, num.doubleValue());
            } else {
                node.put(k, String.valueOf(v));
            }
        });
    }

    static ArrayNode longs(ArrayNode arr, long[] values) {
        for (long v : values) {
            arr.add(v);
        }
        return arr;
    }

    static ArrayNode ints(ArrayNode arr, int[] values) {
        for (int v : values) {
            arr.add(v);
        }
        return arr;
    }
}
