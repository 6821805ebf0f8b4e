package io.whittle.api;

import java.time.Duration;

/**
 * The API's limits as the controllers need them (bound from {@code whittle.api.*} by the application).
 *
 * @param maxPageSize        largest page of the job list
 * @param eventsPollInterval how often event streams look for changes
 * @param eventsTimeout      how long an event stream stays open at most
 */
public record ApiSettings(int maxPageSize, Duration eventsPollInterval, Duration eventsTimeout) {
}
