package io.whittle.jobs.kubernetes;

import io.fabric8.kubernetes.api.model.ContainerStateTerminated;
import io.fabric8.kubernetes.api.model.ContainerStateWaiting;
import io.fabric8.kubernetes.api.model.ContainerStatus;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodCondition;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobCondition;
import io.whittle.jobs.Job.JobError;
import io.whittle.jobs.Job.KubernetesStatus;
import io.whittle.jobs.JobErrorCodes;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Reads a compression job's Kubernetes Job and pods: what to show ({@link KubernetesStatus}: newest pod, its phase and
 * why it waits or how it ended) and whether Kubernetes has given up or the pod cannot start (a {@link Verdict}).
 */
final class WorkerJobStatus {

    /** Container waiting reasons that do not resolve by waiting (unlike ContainerCreating or PodInitializing). */
    static final Set<String> START_FAILURES = Set.of("ImagePullBackOff", "ErrImagePull", "InvalidImageName",
            "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError");

    private WorkerJobStatus() {
    }

    /**
     * The executor's verdict on a job whose Kubernetes Job can no longer produce a result.
     *
     * @param error     the job's error (code and message with the Kubernetes reason)
     * @param deleteJob whether the Kubernetes Job must be deleted (it is still trying)
     */
    record Verdict(JobError error, boolean deleteJob) {
    }

    /** The newest pod (by creation time, then name), if any. */
    static Optional<Pod> newest(List<Pod> pods) {
        return pods.stream().max(Comparator.comparing((Pod p) -> instant(p.getMetadata().getCreationTimestamp())
                .orElse(Instant.EPOCH)).thenComparing(p -> p.getMetadata().getName()));
    }

    /** What to show of {@code job} (which exists) and its pods. */
    static KubernetesStatus describe(String jobName, Job job, List<Pod> pods) {
        Optional<Pod> pod = newest(pods);
        if (pod.isEmpty()) {
            String detail = Boolean.TRUE.equals(job.getSpec().getSuspend()) ? "suspended: waiting for admission (Kueue)"
                    : finished(job, "Failed").map(c -> "Job failed: " + reason(c))
                    .or(() -> finished(job, "Complete").map(c -> "Job complete"))
                    .orElse("waiting for the Job controller to create a pod");
            return new KubernetesStatus(jobName, null, null, detail);
        }
        Pod p = pod.get();
        String phase = p.getStatus() == null ? null : p.getStatus().getPhase();
        return new KubernetesStatus(jobName, p.getMetadata().getName(), phase, podDetail(p));
    }

    /** Why a pod waits, or how it ended; null when it just runs. */
    static String podDetail(Pod p) {
        if (p.getStatus() == null) {
            return null;
        }
        Optional<PodCondition> unscheduled = condition(p, "PodScheduled").filter(c -> "False".equals(c.getStatus()));
        if (unscheduled.isPresent()) {
            return join(unscheduled.get().getReason(), unscheduled.get().getMessage());
        }
        for (ContainerStatus cs : containerStatuses(p)) {
            ContainerStateWaiting w = cs.getState() == null ? null : cs.getState().getWaiting();
            if (w != null && w.getReason() != null) {
                return join(w.getReason(), w.getMessage());
            }
        }
        for (ContainerStatus cs : containerStatuses(p)) {
            ContainerStateTerminated t = cs.getState() == null ? null : cs.getState().getTerminated();
            if (t != null) {
                return terminated(cs.getName(), t);
            }
        }
        return null;
    }

    /**
     * Whether the job must fail now: Kubernetes gave up on the Job (condition Failed: backoff limit, deadline, pod
     * failure policy), the Job succeeded without the worker recording a result, or its newest pod cannot start
     * ({@link #START_FAILURES} for longer than {@code startTimeout}) or be scheduled (Unschedulable for longer than
     * {@code unschedulableTimeout}). Empty while the job may still finish.
     */
    static Optional<Verdict> verdict(String jobName, Job job, List<Pod> pods, Instant now, Duration unschedulableTimeout,
                                     Duration startTimeout) {
        Optional<JobCondition> failed = finished(job, "Failed");
        if (failed.isPresent()) {
            String why = "Kubernetes Job " + jobName + " failed (" + reason(failed.get()) + ")";
            Optional<Terminated> last = lastTermination(pods);
            if (last.isPresent()) {
                why += "; " + last.get().describe();
                if ("OOMKilled".equals(last.get().state().getReason())) {
                    return Optional.of(new Verdict(new JobError(JobErrorCodes.OUT_OF_MEMORY, why), false));
                }
            }
            return Optional.of(new Verdict(new JobError(JobErrorCodes.WORKER_FAILED, why), false));
        }
        if (finished(job, "Complete").isPresent()) {
            return Optional.of(new Verdict(new JobError(JobErrorCodes.WORKER_NO_RESULT, "Kubernetes Job " + jobName
                    + " completed but its worker recorded no result"), false));
        }
        Optional<Pod> newest = newest(pods);
        if (newest.isEmpty() || newest.get().getStatus() == null) {
            return Optional.empty();
        }
        Pod p = newest.get();
        String phase = p.getStatus().getPhase();
        if ("Succeeded".equals(phase) || "Failed".equals(phase)) {
            return Optional.empty(); // the Job controller decides (retry or give up)
        }
        Optional<PodCondition> unscheduled = condition(p, "PodScheduled")
                .filter(c -> "False".equals(c.getStatus()) && "Unschedulable".equals(c.getReason()));
        if (unscheduled.isPresent()) {
            Instant since = instant(unscheduled.get().getLastTransitionTime())
                    .or(() -> instant(p.getMetadata().getCreationTimestamp())).orElse(now);
            Duration waited = Duration.between(since, now);
            if (waited.compareTo(unschedulableTimeout) > 0) {
                return Optional.of(new Verdict(new JobError(JobErrorCodes.WORKER_UNSCHEDULABLE, "pod "
                        + p.getMetadata().getName() + " of Kubernetes Job " + jobName + " was Unschedulable for "
                        + minutes(waited) + ": " + unscheduled.get().getMessage()), true));
            }
        }
        for (ContainerStatus cs : containerStatuses(p)) {
            ContainerStateWaiting w = cs.getState() == null ? null : cs.getState().getWaiting();
            if (w != null && START_FAILURES.contains(w.getReason())) {
                Instant since = instant(p.getStatus().getStartTime())
                        .or(() -> instant(p.getMetadata().getCreationTimestamp())).orElse(now);
                Duration waited = Duration.between(since, now);
                if (waited.compareTo(startTimeout) > 0) {
                    return Optional.of(new Verdict(new JobError(JobErrorCodes.WORKER_START_FAILED, "pod "
                            + p.getMetadata().getName() + " of Kubernetes Job " + jobName + " could not start for "
                            + minutes(waited) + ": container " + cs.getName() + " " + join(w.getReason(), w.getMessage())),
                            true));
                }
            }
        }
        return Optional.empty();
    }

    /** True when the Job has ended (condition Complete or Failed). */
    static boolean isFinished(Job job) {
        return finished(job, "Complete").isPresent() || finished(job, "Failed").isPresent();
    }

    private record Terminated(String pod, String container, ContainerStateTerminated state, Instant at) {
        String describe() {
            return "pod " + pod + ": " + terminated(container, state);
        }
    }

    /** The latest container termination among the pods (the last attempt's end). */
    private static Optional<Terminated> lastTermination(List<Pod> pods) {
        List<Terminated> all = new ArrayList<>();
        for (Pod p : pods) {
            for (ContainerStatus cs : containerStatuses(p)) {
                ContainerStateTerminated t = cs.getState() == null ? null : cs.getState().getTerminated();
                if (t == null && cs.getLastState() != null) {
                    t = cs.getLastState().getTerminated();
                }
                if (t != null) {
                    Instant at = instant(t.getFinishedAt()).or(() -> instant(p.getMetadata().getCreationTimestamp()))
                            .orElse(Instant.EPOCH);
                    all.add(new Terminated(p.getMetadata().getName(), cs.getName(), t, at));
                }
            }
        }
        return all.stream().max(Comparator.comparing(Terminated::at));
    }

    private static String terminated(String container, ContainerStateTerminated t) {
        StringBuilder sb = new StringBuilder("container ").append(container).append(" terminated: ")
                .append(t.getReason() == null ? "unknown reason" : t.getReason());
        if (t.getExitCode() != null) {
            sb.append(" (exit code ").append(t.getExitCode()).append(')');
        }
        if (t.getMessage() != null && !t.getMessage().isBlank()) {
            String m = t.getMessage().strip();
            sb.append(": ").append(m.length() > 500 ? "..." + m.substring(m.length() - 500) : m);
        }
        return sb.toString();
    }

    private static List<ContainerStatus> containerStatuses(Pod p) {
        List<ContainerStatus> out = new ArrayList<>();
        if (p.getStatus() != null) {
            if (p.getStatus().getInitContainerStatuses() != null) {
                out.addAll(p.getStatus().getInitContainerStatuses());
            }
            if (p.getStatus().getContainerStatuses() != null) {
                out.addAll(p.getStatus().getContainerStatuses());
            }
        }
        return out;
    }

    private static Optional<PodCondition> condition(Pod p, String type) {
        if (p.getStatus() == null || p.getStatus().getConditions() == null) {
            return Optional.empty();
        }
        return p.getStatus().getConditions().stream().filter(c -> type.equals(c.getType())).findFirst();
    }

    private static Optional<JobCondition> finished(Job job, String type) {
        if (job.getStatus() == null || job.getStatus().getConditions() == null) {
            return Optional.empty();
        }
        return job.getStatus().getConditions().stream()
                .filter(c -> type.equals(c.getType()) && "True".equals(c.getStatus())).findFirst();
    }

    private static String reason(JobCondition c) {
        return join(c.getReason() == null ? c.getType() : c.getReason(), c.getMessage());
    }

    private static String join(String reason, String message) {
        return message == null || message.isBlank() ? reason : reason + ": " + message;
    }

    private static String minutes(Duration d) {
        long s = d.toSeconds();
        return s >= 120 ? (s / 60) + " minutes" : s + " s";
    }

    static Optional<Instant> instant(String rfc3339) {
        if (rfc3339 == null || rfc3339.isBlank()) {
            return Optional.empty();
        }
        try {
            return Optional.of(Instant.parse(rfc3339));
        } catch (DateTimeParseException e) {
            return Optional.empty();
        }
    }
}
