package io.whittle.methods;

import java.util.List;

/**
 * One parameter of a method: its type, default (null when required or optional without default), bounds and
 * choices. The single source of truth for CLI parsing, REST validation and {@code GET /api/v1/methods}.
 *
 * @param min          lower bound for numbers (and every element of a list), or null
 * @param minExclusive whether {@code min} itself is excluded
 * @param max          upper bound, or null
 * @param maxExclusive whether {@code max} itself is excluded
 * @param choices      allowed values of a CHOICE parameter
 * @param required     the job fails validation without it
 */
public record ParamSpec(String name, ParamType type, Object defaultValue, String description, Double min,
                        boolean minExclusive, Double max, boolean maxExclusive, List<String> choices, boolean required) {

    public ParamSpec {
        choices = choices == null ? List.of() : List.copyOf(choices);
    }

    public static ParamSpec integer(String name, Integer dflt, Integer min, Integer max, String description) {
        return new ParamSpec(name, ParamType.INTEGER, dflt, description, min == null ? null : min.doubleValue(), false,
                max == null ? null : max.doubleValue(), false, null, false);
    }

    public static ParamSpec number(String name, Double dflt, Double min, boolean minExclusive, Double max, boolean maxExclusive,
                                   String description) {
        return new ParamSpec(name, ParamType.NUMBER, dflt, description, min, minExclusive, max, maxExclusive, null, false);
    }

    public static ParamSpec bool(String name, boolean dflt, String description) {
        return new ParamSpec(name, ParamType.BOOLEAN, dflt, description, null, false, null, false, null, false);
    }

    public static ParamSpec string(String name, String dflt, String description) {
        return new ParamSpec(name, ParamType.STRING, dflt, description, null, false, null, false, null, false);
    }

    public static ParamSpec choice(String name, String dflt, List<String> choices, String description) {
        return new ParamSpec(name, ParamType.CHOICE, dflt, description, null, false, null, false, choices, false);
    }

    public static ParamSpec numberList(String name, List<Double> dflt, Double min, Double max, String description) {
        return new ParamSpec(name, ParamType.NUMBER_LIST, dflt, description, min, false, max, false, null, false);
    }

    public static ParamSpec integerList(String name, List<Integer> dflt, Integer min, Integer max, String description) {
        return new ParamSpec(name, ParamType.INTEGER_LIST, dflt, description, min == null ? null : min.doubleValue(), false,
                max == null ? null : max.doubleValue(), false, null, false);
    }

    /** The same parameter, required (no default). */
    public ParamSpec asRequired() {
        return new ParamSpec(name, type, null, description, min, minExclusive, max, maxExclusive, choices, true);
    }

    /** A human description of the allowed range, e.g. {@code 0 <= x < 1}. */
    public String rangeText() {
        if (type == ParamType.CHOICE) {
            return "one of " + choices;
        }
        if (min == null && max == null) {
            return type.name().toLowerCase();
        }
        StringBuilder sb = new StringBuilder();
        if (min != null) {
            sb.append(fmt(min)).append(minExclusive ? " < " : " <= ");
        }
        sb.append(name);
        if (max != null) {
            sb.append(maxExclusive ? " < " : " <= ").append(fmt(max));
        }
        return sb.toString();
    }

    private static String fmt(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }
}
