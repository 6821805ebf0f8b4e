package io.whittle.kernels;

/**
 * Device memory could not be had: a limit of the allocator tree, or the device itself, refused. The message
 * carries the numbers (requested, allocated, peak, limit, device free/total) so a job that cannot fit says why.
 */
public final class DeviceOutOfMemoryException extends RuntimeException {

    private final long requestedBytes;

    public DeviceOutOfMemoryException(String message, long requestedBytes, Throwable cause) {
        super(message, cause);
        this.requestedBytes = requestedBytes;
    }

    public long requestedBytes() {
        return requestedBytes;
    }
}
