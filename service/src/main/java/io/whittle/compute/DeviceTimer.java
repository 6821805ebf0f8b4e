package io.whittle.compute;

/**
 * Implemented by backends whose operations run asynchronously (a GPU stream): times the device work that
 * {@code body} issues, from device events, waiting for it to finish. Benchmarks use it where present and the wall
 * clock otherwise (synchronous backends).
 */
public interface DeviceTimer {

    double timeMillis(Runnable body);
}
