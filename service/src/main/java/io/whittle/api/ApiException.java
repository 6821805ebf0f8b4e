package io.whittle.api;

import org.springframework.http.HttpStatus;

/** An API error with its HTTP status and stable problem {@code code}. */
public class ApiException extends RuntimeException {

    private final HttpStatus status;
    private final String code;

    public ApiException(HttpStatus status, String code, String message) {
        super(message);
        this.status = status;
        this.code = code;
    }

    public HttpStatus status() {
        return status;
    }

    public String code() {
        return code;
    }

    static ApiException jobNotFound(String id) {
        return new ApiException(HttpStatus.NOT_FOUND, "JOB_NOT_FOUND", "no job with id '" + id + "'");
    }
}
