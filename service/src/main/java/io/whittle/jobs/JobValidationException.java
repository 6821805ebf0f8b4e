package io.whittle.jobs;

import io.whittle.methods.InvalidParametersException.FieldError;
import java.util.List;
import java.util.stream.Collectors;

/**
 * A job request that cannot be accepted, with a stable code and the request fields at fault; the API turns it into a
 * 400 problem document. Codes: {@link #VALIDATION_FAILED} (a field is missing, malformed, out of range or names
 * something that does not exist) and {@link #PATH_NOT_ALLOWED} (a path escapes the configured storage roots).
 */
public class JobValidationException extends IllegalArgumentException {

    public static final String VALIDATION_FAILED = "VALIDATION_FAILED";
    public static final String PATH_NOT_ALLOWED = "PATH_NOT_ALLOWED";

    private final String code;
    private final List<FieldError> errors;

    public JobValidationException(String code, List<FieldError> errors) {
        super(errors.stream().map(e -> e.field() + ": " + e.message()).collect(Collectors.joining("; ")));
        this.code = code;
        this.errors = List.copyOf(errors);
    }

    public static JobValidationException field(String field, String message) {
        return new JobValidationException(VALIDATION_FAILED, List.of(new FieldError(field, message)));
    }

    public String code() {
        return code;
    }

    public List<FieldError> errors() {
        return errors;
    }
}
