package io.whittle.model.safetensors;

import java.nio.file.Path;

/** A safetensors file that cannot be read or written; the message names the file, the tensor and the fault. */
public class SafetensorsException extends RuntimeException {

    public SafetensorsException(Path file, String message) {
        super(file + ": " + message);
    }

    public SafetensorsException(Path file, String message, Throwable cause) {
        super(file + ": " + message, cause);
    }
}
