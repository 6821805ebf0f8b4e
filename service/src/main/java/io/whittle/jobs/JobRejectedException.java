package io.whittle.jobs;

/**
 * A claimed job that cannot run on this worker, found before any work starts: it fails with {@link #code()} (one of
 * {@link JobErrorCodes}) and the message.
 */
public class JobRejectedException extends RuntimeException {

    private final String code;

    public JobRejectedException(String code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public String code() {
        return code;
    }
}
