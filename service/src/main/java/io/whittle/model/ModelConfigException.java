package io.whittle.model;

/** A config.json that Whittle cannot use, or a checkpoint that does not match its config. */
public class ModelConfigException extends RuntimeException {
    public ModelConfigException(String message) {
        super(message);
    }

    public ModelConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
