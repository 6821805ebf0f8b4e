package io.whittle.model;

import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.JsonNode;

/**
 * Typed access to a config.json object where every absent (or null) field takes the transformers class default
 * given by the caller, as {@code PretrainedConfig} does. Wrong types are errors naming the field.
 */
final class ConfigReader {

    private final JsonNode node;
    private final String where;

    ConfigReader(JsonNode node, String where) {
        this.node = node;
        this.where = where;
    }

    boolean has(String field) {
        JsonNode v = node.get(field);
        return v != null && !v.isNull();
    }

    JsonNode raw(String field) {
        return node.get(field);
    }

    int getInt(String field, int dflt) {
        if (!has(field)) {
            return dflt;
        }
        JsonNode v = node.get(field);
        if (v.isIntegralNumber() && v.canConvertToInt()) {
            return v.intValue();
        }
        if (v.isFloatingPointNumber() && v.doubleValue() == Math.rint(v.doubleValue())
                && Math.abs(v.doubleValue()) <= Integer.MAX_VALUE) {
            return (int) v.doubleValue(); // e.g. 4096.0 from a config written by a float-happy tool
        }
        throw new ModelConfigException(where + ": field '" + field + "' must be an integer (32-bit), got " + v);
    }

    Integer getIntOrNull(String field) {
        return has(field) ? getInt(field, 0) : null;
    }

    double getDouble(String field, double dflt) {
        if (!has(field)) {
            return dflt;
        }
        JsonNode v = node.get(field);
        if (!v.isNumber()) {
            throw new ModelConfigException(where + ": field '" + field + "' must be a number, got " + v);
        }
        return v.asDouble();
    }

    boolean getBool(String field, boolean dflt) {
        if (!has(field)) {
            return dflt;
        }
        JsonNode v = node.get(field);
        if (!v.isBoolean()) {
            throw new ModelConfigException(where + ": field '" + field + "' must be true or false, got " + v);
        }
        return v.asBoolean();
    }

    String getString(String field, String dflt) {
        if (!has(field)) {
            return dflt;
        }
        JsonNode v = node.get(field);
        if (!v.isString()) {
            throw new ModelConfigException(where + ": field '" + field + "' must be a string, got " + v);
        }
        return v.stringValue();
    }

    List<Integer> getIntList(String field) {
        List<Integer> out = new ArrayList<>();
        if (!has(field)) {
            return out;
        }
        JsonNode v = node.get(field);
        if (!v.isArray()) {
            throw new ModelConfigException(where + ": field '" + field + "' must be a list of integers, got " + v);
        }
        for (JsonNode e : v) {
            if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                throw new ModelConfigException(where + ": field '" + field + "' must be a list of integers, got " + v);
            }
            out.add(e.intValue());
        }
        return out;
    }

    ConfigReader child(String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return new ConfigReader(tools.jackson.databind.node.JsonNodeFactory.instance.objectNode(), where + "." + field);
        }
        if (!v.isObject()) {
            throw new ModelConfigException(where + ": field '" + field + "' must be an object");
        }
        return new ConfigReader(v, where + "." + field);
    }

    String where() {
        return where;
    }
}
