package io.whittle.jobs.kubernetes;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * How the Kubernetes executor builds and watches the Job of each compression job. The pod template (from the chart,
 * usually a mounted ConfigMap) carries what is the same for every job: node selector, tolerations, volumes and
 * mounts, env from Secrets, security context, service account; the executor fills in the container's image (when
 * set here), args, GPU limits and labels. Settings given here override the template's.
 *
 * @param namespace             the namespace of the Jobs (the API's own by default)
 * @param podTemplate           the worker pod template; an empty one when none is configured
 * @param image                 the Whittle image (overrides the template's container image); null: the template's
 * @param imagePullPolicy       overrides the template's; null: the template's (or Kubernetes' default)
 * @param serviceAccountName    the job pods' service account (overrides the template's); null: the template's
 * @param containerName         the container that runs Whittle (found in the template by name, or its only one)
 * @param command               the container command; empty: the image's entrypoint (expected to be {@code whittle})
 * @param gpuResource           the default GPU resource name ({@code nvidia.com/gpu})
 * @param gpuCount              GPUs per job when the request does not say (jobs with backend {@code cpu} get none)
 * @param maxGpus               most GPUs a request may ask for
 * @param allowedGpuResources   GPU resources a request may name (exact, or with {@code *}: {@code nvidia.com/mig-*})
 * @param nodeSelector          added to the template's node selector
 * @param labels                added to the Job's and its pods' labels
 * @param annotations           added to the Job's and its pods' annotations
 * @param backoffLimit          pods Kubernetes retries after a failure ({@code spec.backoffLimit})
 * @param activeDeadline        longest run of a Job ({@code activeDeadlineSeconds}); null: none
 * @param ttlAfterFinished      when a finished Job is deleted ({@code ttlSecondsAfterFinished}); null: never
 * @param queueName             Kueue LocalQueue ({@code kueue.x-k8s.io/queue-name} label); null: no Kueue
 * @param priorityClassName     the pods' PriorityClass; null: none
 * @param workloadPriorityClass Kueue WorkloadPriorityClass ({@code kueue.x-k8s.io/priority-class} label); null: none
 * @param jobNamePrefix         Job names are this prefix and the job id
 * @param pollInterval          how often the leader dispatches and reconciles (submissions wake it at once)
 * @param leaderLease           how long a leader's claim lasts without renewal
 * @param unschedulableTimeout  how long a pod may stay Unschedulable before the job fails
 * @param startTimeout          how long a pod may fail to start (ImagePullBackOff, CreateContainerConfigError...)
 * @param finishedWindow        how long after a job ended the reconciler still updates its pod's phase
 */
public record KubernetesExecutorSettings(String namespace, PodTemplateSpec podTemplate, String image, String imagePullPolicy,
                                         String serviceAccountName, String containerName, List<String> command,
                                         String gpuResource, int gpuCount, int maxGpus, List<String> allowedGpuResources,
                                         Map<String, String> nodeSelector, Map<String, String> labels,
                                         Map<String, String> annotations, int backoffLimit, Duration activeDeadline,
                                         Duration ttlAfterFinished, String queueName, String priorityClassName,
                                         String workloadPriorityClass, String jobNamePrefix, Duration pollInterval,
                                         Duration leaderLease, Duration unschedulableTimeout, Duration startTimeout,
                                         Duration finishedWindow) {

    private static final Pattern DNS_LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
    /** A job id (a UUID) is 36 characters; a Job name is at most 63. */
    static final int MAX_PREFIX = 63 - 36;

    public KubernetesExecutorSettings {
        require(namespace != null && DNS_LABEL.matcher(namespace).matches(), "namespace",
                "'" + namespace + "' is not a namespace name");
        podTemplate = podTemplate == null ? new PodTemplateSpec() : Serialization.clone(podTemplate);
        command = command == null ? List.of() : List.copyOf(command);
        allowedGpuResources = List.copyOf(allowedGpuResources);
        nodeSelector = Map.copyOf(nodeSelector);
        labels = Map.copyOf(labels);
        annotations = Map.copyOf(annotations);
        require(gpuCount >= 0, "gpu-count", "must be 0 or more, got " + gpuCount);
        require(maxGpus >= gpuCount, "max-gpus", "must be at least gpu-count (" + gpuCount + "), got " + maxGpus);
        require(backoffLimit >= 0, "backoff-limit", "must be 0 or more, got " + backoffLimit);
        require(activeDeadline == null || activeDeadline.toSeconds() >= 1, "active-deadline", "must be at least 1s");
        // a Job removed before the reconciler saw it end would leave its job without the reason
        require(ttlAfterFinished == null || ttlAfterFinished.compareTo(pollInterval.multipliedBy(4)) >= 0,
                "ttl-after-finished", "must be at least 4 poll intervals (" + pollInterval.multipliedBy(4)
                        + ") so that the executor sees every finished Job before it is deleted");
        require(jobNamePrefix.length() <= MAX_PREFIX && DNS_LABEL.matcher(jobNamePrefix + "x").matches(),
                "job-name-prefix", "'" + jobNamePrefix + "' must be lowercase letters, digits and '-', starting with a "
                        + "letter or digit, at most " + MAX_PREFIX + " characters");
        require(leaderLease.compareTo(pollInterval.multipliedBy(2)) >= 0, "leader-lease",
                "must be at least twice the poll interval (" + pollInterval + ")");
        container(podTemplate, containerName); // fails early on a template the executor cannot use
        PodSpec spec = podTemplate.getSpec();
        boolean templateImage = spec != null && container(podTemplate, containerName) != null
                && container(podTemplate, containerName).getImage() != null;
        require(image != null && !image.isBlank() || templateImage, "image",
                "is not set and the pod template's container has no image");
    }

    private static void require(boolean ok, String property, String message) {
        if (!ok) {
            throw new IllegalArgumentException("whittle.executor.kubernetes." + property + ": " + message);
        }
    }

    /**
     * The container of {@code template} that runs Whittle: the one named {@code name}, else the only one; null when
     * the template has none (the executor adds it).
     */
    static Container container(PodTemplateSpec template, String name) {
        if (template.getSpec() == null || template.getSpec().getContainers() == null
                || template.getSpec().getContainers().isEmpty()) {
            return null;
        }
        List<Container> containers = template.getSpec().getContainers();
        for (Container c : containers) {
            if (name.equals(c.getName())) {
                return c;
            }
        }
        if (containers.size() == 1) {
            return containers.get(0);
        }
        List<String> names = new ArrayList<>();
        containers.forEach(c -> names.add(c.getName()));
        throw new IllegalArgumentException("whittle.executor.kubernetes.container-name: the pod template has containers "
                + names + " and none is named '" + name + "'");
    }

    /**
     * Reads a pod template (a PodTemplateSpec: {@code metadata} and {@code spec}) from YAML or JSON. Unknown fields
     * are errors (a misspelt field would otherwise be dropped without a word).
     */
    public static PodTemplateSpec loadPodTemplate(Path file) {
        PodTemplateSpec t;
        try (InputStream in = Files.newInputStream(file)) {
            t = Serialization.unmarshal(in, PodTemplateSpec.class);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read the pod template " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("the pod template " + file + " is not a pod template (metadata, spec): "
                    + e.getMessage(), e);
        }
        if (t == null) {
            throw new IllegalArgumentException("the pod template " + file + " is empty");
        }
        List<String> unknown = new ArrayList<>();
        t.getAdditionalProperties().keySet().forEach(k -> unknown.add(k));
        if (t.getMetadata() != null) {
            t.getMetadata().getAdditionalProperties().keySet().forEach(k -> unknown.add("metadata." + k));
        }
        if (t.getSpec() != null) {
            t.getSpec().getAdditionalProperties().keySet().forEach(k -> unknown.add("spec." + k));
            if (t.getSpec().getContainers() != null) {
                for (Container c : t.getSpec().getContainers()) {
                    c.getAdditionalProperties().keySet().forEach(k -> unknown.add("spec.containers[" + c.getName() + "]." + k));
                }
            }
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("the pod template " + file + " has unknown fields " + unknown
                    + " (expected a PodTemplateSpec: metadata and spec)");
        }
        return t;
    }
}
