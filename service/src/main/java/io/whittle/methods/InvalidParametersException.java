package io.whittle.methods;

import java.util.List;
import java.util.stream.Collectors;

/** Parameters that fail validation; carries every fault with the field it concerns (for problem details). */
public class InvalidParametersException extends IllegalArgumentException {

    /** One fault: the parameter (or request field) at fault and what is wrong with it. */
    public record FieldError(String field, String message) {
    }

    private final List<FieldError> errors;

    public InvalidParametersException(String method, List<FieldError> errors) {
        super("invalid parameters for " + method + ": " + errors.stream().map(e -> e.field() + ": " + e.message())
                .collect(Collectors.joining("; ")));
        this.errors = List.copyOf(errors);
    }

    public List<FieldError> errors() {
        return errors;
    }
}
