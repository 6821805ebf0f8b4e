package io.whittle.methods;

import io.whittle.methods.InvalidParametersException.FieldError;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Validated parameter values of one job: every declared parameter present (defaults filled in), each of its
 * declared type and within its range. Built by {@link #validate} from strings (CLI {@code --param k=v}) or JSON
 * values (REST); unknown names are errors.
 */
public final class MethodParams {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final String method;
    private final Map<String, Object> values;
    private final Map<String, Boolean> explicit;

    private MethodParams(String method, Map<String, Object> values, Map<String, Boolean> explicit) {
        this.method = method;
        this.values = Collections.unmodifiableMap(values);
        this.explicit = Collections.unmodifiableMap(explicit);
    }

    /**
     * Validates raw values against the descriptor. Raw values may be strings, numbers, booleans, lists or
     * {@link JsonNode}s. Throws {@link InvalidParametersException} listing every fault.
     */
    public static MethodParams validate(MethodDescriptor descriptor, Map<String, ?> raw) {
        List<FieldError> errors = new ArrayList<>();
        Map<String, Object> values = new LinkedHashMap<>();
        Map<String, Boolean> explicit = new LinkedHashMap<>();
        Map<String, ?> given = raw == null ? Map.of() : raw;
        for (String name : given.keySet()) {
            if (descriptor.param(name).isEmpty()) {
                errors.add(new FieldError("params." + name, "unknown parameter for " + descriptor.name() + "; known: "
                        + descriptor.params().stream().map(ParamSpec::name).toList()));
            }
        }
        for (ParamSpec p : descriptor.params()) {
            Object v = given.get(p.name());
            if (v instanceof JsonNode n && n.isNull()) {
                v = null;
            }
            if (v == null) {
                if (p.required()) {
                    errors.add(new FieldError("params." + p.name(), "is required (" + p.rangeText() + ")"));
                }
                values.put(p.name(), p.defaultValue());
                explicit.put(p.name(), false);
                continue;
            }
            try {
                Object parsed = parse(p, v);
                checkRange(p, parsed);
                values.put(p.name(), parsed);
                explicit.put(p.name(), true);
            } catch (IllegalArgumentException e) {
                errors.add(new FieldError("params." + p.name(), e.getMessage()));
            }
        }
        if (!errors.isEmpty()) {
            throw new InvalidParametersException(descriptor.name(), errors);
        }
        return new MethodParams(descriptor.name(), values, explicit);
    }

    private static Object parse(ParamSpec p, Object v) {
        return switch (p.type()) {
            case INTEGER -> toLong(v, p);
            case NUMBER -> toDouble(v, p);
            case BOOLEAN -> toBool(v, p);
            case STRING -> toText(v);
            case CHOICE -> {
                String s = toText(v);
                if (!p.choices().contains(s)) {
                    throw new IllegalArgumentException("'" + s + "' is not one of " + p.choices());
                }
                yield s;
            }
            case NUMBER_LIST -> toList(v, p).stream().map(x -> toDouble(x, p)).toList();
            case INTEGER_LIST -> toList(v, p).stream().map(x -> toLong(x, p)).toList();
        };
    }

    private static List<Object> toList(Object v, ParamSpec p) {
        List<Object> out = new ArrayList<>();
        if (v instanceof JsonNode n && n.isArray()) {
            n.forEach(out::add);
        } else if (v instanceof List<?> l) {
            out.addAll(l);
        } else {
            String s = toText(v).trim();
            if (s.startsWith("[") && s.endsWith("]")) {
                s = s.substring(1, s.length() - 1);
            }
            for (String part : s.split(",")) {
                if (!part.isBlank()) {
                    out.add(part.trim());
                }
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("must be a non-empty list");
        }
        return out;
    }

    private static String toText(Object v) {
        if (v instanceof JsonNode n) {
            return n.isString() ? n.stringValue() : n.toString();
        }
        return v.toString();
    }

    private static long toLong(Object v, ParamSpec p) {
        if (v instanceof JsonNode n) {
            if (n.isIntegralNumber() && n.canConvertToLong()) {
                return n.asLong();
            }
            if (n.isNumber() && n.asDouble() == Math.rint(n.asDouble())) {
                return (long) n.asDouble();
            }
            if (!n.isString()) {
                throw new IllegalArgumentException("must be an integer, got " + n);
            }
            v = n.stringValue();
        }
        if (v instanceof Number num) {
            double d = num.doubleValue();
            if (d != Math.rint(d)) {
                throw new IllegalArgumentException("must be an integer, got " + v);
            }
            return num.longValue();
        }
        try {
            return Long.parseLong(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("must be an integer, got '" + v + "'");
        }
    }

    private static double toDouble(Object v, ParamSpec p) {
        if (v instanceof JsonNode n) {
            if (n.isNumber()) {
                return n.asDouble();
            }
            if (!n.isString()) {
                throw new IllegalArgumentException("must be a number, got " + n);
            }
            v = n.stringValue();
        }
        if (v instanceof Number num) {
            return num.doubleValue();
        }
        try {
            double d = Double.parseDouble(v.toString().trim());
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new NumberFormatException();
            }
            return d;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("must be a number, got '" + v + "'");
        }
    }

    private static boolean toBool(Object v, ParamSpec p) {
        if (v instanceof JsonNode n) {
            if (n.isBoolean()) {
                return n.asBoolean();
            }
            v = toText(n);
        }
        if (v instanceof Boolean b) {
            return b;
        }
        String s = v.toString().trim().toLowerCase();
        if (s.equals("true")) {
            return true;
        }
        if (s.equals("false")) {
            return false;
        }
        throw new IllegalArgumentException("must be true or false, got '" + v + "'");
    }

    private static void checkRange(ParamSpec p, Object value) {
        if (value instanceof List<?> list) {
            for (Object o : list) {
                checkRange(p, o);
            }
            return;
        }
        if (!(value instanceof Number n)) {
            return;
        }
        double d = n.doubleValue();
        boolean ok = (p.min() == null || (p.minExclusive() ? d > p.min() : d >= p.min()))
                && (p.max() == null || (p.maxExclusive() ? d < p.max() : d <= p.max()));
        if (!ok) {
            throw new IllegalArgumentException("value " + value + " is out of range (" + p.rangeText() + ")");
        }
    }

    public String method() {
        return method;
    }

    public Object get(String name) {
        if (!values.containsKey(name)) {
            throw new IllegalArgumentException(method + " has no parameter '" + name + "'");
        }
        return values.get(name);
    }

    public boolean isSet(String name) {
        return Boolean.TRUE.equals(explicit.get(name));
    }

    public int getInt(String name) {
        Object v = get(name);
        return v == null ? 0 : Math.toIntExact(((Number) v).longValue());
    }

    public long getLong(String name) {
        return ((Number) get(name)).longValue();
    }

    public double getDouble(String name) {
        return ((Number) get(name)).doubleValue();
    }

    public boolean getBoolean(String name) {
        return (Boolean) get(name);
    }

    public String getString(String name) {
        Object v = get(name);
        return v == null ? null : v.toString();
    }

    @SuppressWarnings("unchecked")
    public List<Double> getNumberList(String name) {
        Object v = get(name);
        return v == null ? null : ((List<Number>) v).stream().map(Number::doubleValue).toList();
    }

    @SuppressWarnings("unchecked")
    public List<Integer> getIntegerList(String name) {
        Object v = get(name);
        return v == null ? null : ((List<Number>) v).stream().map(n -> Math.toIntExact(n.longValue())).toList();
    }

    public Map<String, Object> asMap() {
        return values;
    }

    /** The values as JSON (for reports and the job resource). */
    public ObjectNode toJson() {
        ObjectNode node = JSON.createObjectNode();
        values.forEach((k, v) -> node.set(k, JSON.valueToTree(v)));
        return node;
    }

}
