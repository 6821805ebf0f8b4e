package io.whittle.methods;

/** The value types method parameters can have, as the REST API and the CLI accept them. */
public enum ParamType {
    /** A whole number. */
    INTEGER,
    /** A real number. */
    NUMBER,
    BOOLEAN,
    STRING,
    /** One of a fixed set of strings. */
    CHOICE,
    /** A comma-separated list (CLI) or JSON array (REST) of numbers. */
    NUMBER_LIST,
    /** A comma-separated list (CLI) or JSON array (REST) of whole numbers. */
    INTEGER_LIST
}
