package io.whittle.kernels;

/** Device memory as cuMemGetInfo reports it (the whole device, all processes). */
public record MemInfo(long freeBytes, long totalBytes) {

    public long usedBytes() {
        return totalBytes - freeBytes;
    }

    @Override
    public String toString() {
        return "device free=" + Bytes.format(freeBytes) + " / total=" + Bytes.format(totalBytes);
    }
}
