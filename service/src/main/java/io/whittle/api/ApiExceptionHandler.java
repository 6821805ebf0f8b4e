package io.whittle.api;

import io.whittle.jobs.JobService;
import io.whittle.jobs.JobValidationException;
import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.InvalidParametersException.FieldError;
import jakarta.servlet.http.HttpServletRequest;
import java.net.URI;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.MediaType;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;
import org.springframework.http.converter.HttpMessageNotReadableException;
import org.springframework.web.ErrorResponse;
import org.springframework.web.bind.MissingRequestHeaderException;
import org.springframework.web.bind.MissingServletRequestParameterException;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;
import org.springframework.web.method.annotation.MethodArgumentTypeMismatchException;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.exc.MismatchedInputException;
import tools.jackson.databind.exc.UnrecognizedPropertyException;

/**
 * Turns every error of the API into an RFC 9457 problem document ({@code application/problem+json}) with a stable
 * {@code code} and, for validation errors, {@code errors}: the fields at fault with what is wrong with each.
 */
@RestControllerAdvice
public class ApiExceptionHandler {

    private static final Logger log = LoggerFactory.getLogger(ApiExceptionHandler.class);
    private static final MediaType PROBLEM = MediaType.APPLICATION_PROBLEM_JSON;

    @ExceptionHandler(JobValidationException.class)
    ResponseEntity<ProblemDetail> validation(JobValidationException e, HttpServletRequest request) {
        String title = JobValidationException.PATH_NOT_ALLOWED.equals(e.code()) ? "Path not allowed" : "Invalid job request";
        return problem(HttpStatus.BAD_REQUEST, title, e.code(), e.getMessage(), request, e.errors());
    }

    @ExceptionHandler(InvalidParametersException.class)
    ResponseEntity<ProblemDetail> parameters(InvalidParametersException e, HttpServletRequest request) {
        return problem(HttpStatus.BAD_REQUEST, "Invalid job request", JobValidationException.VALIDATION_FAILED,
                e.getMessage(), request, e.errors());
    }

    @ExceptionHandler(JobService.IdempotencyConflictException.class)
    ResponseEntity<ProblemDetail> idempotency(JobService.IdempotencyConflictException e, HttpServletRequest request) {
        ResponseEntity<ProblemDetail> r = problem(HttpStatus.UNPROCESSABLE_CONTENT, "Idempotency key reused",
                "IDEMPOTENCY_KEY_REUSED", e.getMessage(), request, List.of(new FieldError("Idempotency-Key", e.getMessage())));
        r.getBody().setProperty("jobId", e.jobId());
        return r;
    }

    @ExceptionHandler(ApiException.class)
    ResponseEntity<ProblemDetail> api(ApiException e, HttpServletRequest request) {
        return problem(e.status(), e.status().getReasonPhrase(), e.code(), e.getMessage(), request, null);
    }

    @ExceptionHandler(HttpMessageNotReadableException.class)
    ResponseEntity<ProblemDetail> unreadable(HttpMessageNotReadableException e, HttpServletRequest request) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof PayloadTooLargeException big) {
                return problem(HttpStatus.CONTENT_TOO_LARGE, "Content Too Large", "PAYLOAD_TOO_LARGE", big.getMessage(),
                        request, null);
            }
        }
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof UnrecognizedPropertyException u) {
                String field = path(u);
                return problem(HttpStatus.BAD_REQUEST, "Invalid job request", "UNKNOWN_FIELD", "unknown field '" + field
                        + "'", request, List.of(new FieldError(field, "is not a field of this request; known: "
                        + u.getKnownPropertyIds())));
            }
            if (t instanceof MismatchedInputException m && !m.getPath().isEmpty()) {
                String field = path(m);
                return problem(HttpStatus.BAD_REQUEST, "Invalid job request", JobValidationException.VALIDATION_FAILED,
                        "field '" + field + "' has the wrong type", request,
                        List.of(new FieldError(field, "has the wrong type: " + m.getOriginalMessage())));
            }
        }
        JacksonException parse = null;
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof JacksonException j) {
                parse = j;
            }
        }
        String detail = parse != null ? "the body is not valid JSON: " + parse.getOriginalMessage()
                : "the body is missing or is not valid JSON";
        return problem(HttpStatus.BAD_REQUEST, "Malformed request", "MALFORMED_JSON", detail, request, null);
    }

    private static String path(JacksonException e) {
        StringBuilder sb = new StringBuilder();
        for (JacksonException.Reference r : e.getPath()) {
            if (r.getPropertyName() != null) {
                if (!sb.isEmpty()) {
                    sb.append('.');
                }
                sb.append(r.getPropertyName());
            } else if (r.getIndex() >= 0) {
                sb.append('[').append(r.getIndex()).append(']');
            }
        }
        return sb.isEmpty() ? "body" : sb.toString();
    }

    @ExceptionHandler(MethodArgumentTypeMismatchException.class)
    ResponseEntity<ProblemDetail> typeMismatch(MethodArgumentTypeMismatchException e, HttpServletRequest request) {
        return problem(HttpStatus.BAD_REQUEST, "Invalid request", JobValidationException.VALIDATION_FAILED,
                "parameter '" + e.getName() + "' has the wrong type", request,
                List.of(new FieldError(e.getName(), "'" + e.getValue() + "' is not a valid value")));
    }

    @ExceptionHandler(MissingRequestHeaderException.class)
    ResponseEntity<ProblemDetail> missingHeader(MissingRequestHeaderException e, HttpServletRequest request) {
        return problem(HttpStatus.BAD_REQUEST, "Invalid request", JobValidationException.VALIDATION_FAILED, e.getMessage(),
                request, List.of(new FieldError(e.getHeaderName(), "is required")));
    }

    @ExceptionHandler(MissingServletRequestParameterException.class)
    ResponseEntity<ProblemDetail> missingParameter(MissingServletRequestParameterException e, HttpServletRequest request) {
        return problem(HttpStatus.BAD_REQUEST, "Invalid request", JobValidationException.VALIDATION_FAILED, e.getMessage(),
                request, List.of(new FieldError(e.getParameterName(), "is required")));
    }

    /** Spring MVC's own errors (404, 405, 406, 415...) keep their status and get a code; anything else is a 500. */
    @ExceptionHandler(Exception.class)
    ResponseEntity<ProblemDetail> other(Exception e, HttpServletRequest request) {
        if (e instanceof ErrorResponse er) {
            HttpStatusCode status = er.getStatusCode();
            HttpStatus s = HttpStatus.resolve(status.value());
            String code = switch (status.value()) {
                case 404 -> "NOT_FOUND";
                case 405 -> "METHOD_NOT_ALLOWED";
                case 406 -> "NOT_ACCEPTABLE";
                case 413 -> "PAYLOAD_TOO_LARGE";
                case 415 -> "UNSUPPORTED_MEDIA_TYPE";
                default -> status.is4xxClientError() ? "BAD_REQUEST" : "INTERNAL_ERROR";
            };
            String detail = er.getBody().getDetail() != null ? er.getBody().getDetail() : e.getMessage();
            return problem(s == null ? HttpStatus.INTERNAL_SERVER_ERROR : s, s == null ? "Error" : s.getReasonPhrase(), code,
                    detail, request, null);
        }
        log.error("{} {} failed", request.getMethod(), request.getRequestURI(), e);
        return problem(HttpStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", "INTERNAL_ERROR",
                "the server failed to handle the request: " + e.getClass().getSimpleName(), request, null);
    }

    private static ResponseEntity<ProblemDetail> problem(HttpStatus status, String title, String code, String detail,
                                                         HttpServletRequest request, List<FieldError> errors) {
        ProblemDetail p = ProblemDetail.forStatusAndDetail(status, detail);
        p.setTitle(title);
        p.setInstance(URI.create(request.getRequestURI()));
        p.setProperty("code", code);
        if (errors != null && !errors.isEmpty()) {
            p.setProperty("errors", errors.stream().map(f -> Map.of("field", f.field(), "message", f.message())).toList());
        }
        return ResponseEntity.status(status).contentType(PROBLEM).body(p);
    }
}
