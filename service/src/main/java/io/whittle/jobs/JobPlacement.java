package io.whittle.jobs;

import java.util.List;
import java.util.regex.Pattern;

/**
 * Where the service's jobs run, as {@link JobService} needs to know it: the executor's name (recorded with each
 * job), which placement requests ({@code resources}) it accepts, and what it must do when a job is cancelled.
 */
public interface JobPlacement {

    /** The in-process worker slots ({@code whittle.executor=local}): no placement requests, nothing to do on cancel. */
    JobPlacement LOCAL = new JobPlacement() {
        @Override
        public String executor() {
            return ExecutorNames.LOCAL;
        }

        @Override
        public JobResources checkResources(JobResources requested) {
            if (requested != null && !requested.isEmpty()) {
                throw JobValidationException.field("resources", "is only accepted with the Kubernetes executor "
                        + "(whittle.executor=kubernetes); this service runs jobs on its own worker slots");
            }
            return null;
        }
    };

    /** The executor that runs this service's new jobs ({@link ExecutorNames}). */
    String executor();

    /**
     * Validates a job's placement request; returns what to store (null for none), or throws a
     * {@link JobValidationException} on field {@code resources.*}.
     */
    JobResources checkResources(JobResources requested);

    /** Called after a job's cancellation was recorded (queued: cancelled; running: requested). */
    default void cancelled(Job job) {
    }

    /**
     * The placement rules of an executor that places pods by GPU resources: a request may ask for 0 to
     * {@code maxGpus} GPUs of a resource matching one of {@code allowedGpuResources} (exact names, or patterns with
     * {@code *}, e.g. {@code nvidia.com/mig-*}).
     */
    static JobResources checkGpuResources(JobResources requested, int maxGpus, List<String> allowedGpuResources) {
        if (requested == null || requested.isEmpty()) {
            return null;
        }
        if (requested.gpus() != null && requested.gpus() > maxGpus) {
            throw JobValidationException.field("resources.gpus", "must be between 0 and " + maxGpus + ", got "
                    + requested.gpus());
        }
        if (requested.gpuResource() != null && allowedGpuResources.stream()
                .noneMatch(p -> globMatches(p, requested.gpuResource()))) {
            throw JobValidationException.field("resources.gpuResource", "'" + requested.gpuResource()
                    + "' is not one of the GPU resources this service may request: " + allowedGpuResources);
        }
        return requested;
    }

    private static boolean globMatches(String glob, String value) {
        StringBuilder regex = new StringBuilder();
        for (String part : glob.split("\\*", -1)) {
            if (regex.length() > 0) {
                regex.append(".*");
            }
            regex.append(Pattern.quote(part));
        }
        return value.matches(regex.toString());
    }
}
