package io.whittle.jobs.kubernetes;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.EnvVarBuilder;
import io.fabric8.kubernetes.api.model.ObjectMeta;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.PodFailurePolicyBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.PodFailurePolicyRuleBuilder;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.whittle.jobs.JobResources;
import io.whittle.jobs.SingleJobWorker;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Builds the batch/v1 Job that runs one compression job: the worker pod template with the Whittle container running
 * {@code worker --job <id>}, its GPU limit, labels linking Job and pods to the job id, the retry, deadline and
 * clean-up settings, a pod failure policy that ends the Job at once when the worker says retrying cannot help, and
 * the Kueue labels. The Job's name is derived from the job id, so creating it twice is harmless (409).
 */
public final class WorkerJobs {

    /** Label on the Job and its pods: the compression job's id. */
    public static final String JOB_ID_LABEL = "whittle.io/job-id";
    /** Label on the Job and its pods: the compression method. */
    public static final String METHOD_LABEL = "whittle.io/method";
    /** Label on everything the executor creates (the reconciler lists by it). */
    public static final String MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
    public static final String MANAGED_BY = "whittle-executor";
    /** Kueue: the LocalQueue that admits the Job. */
    public static final String KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name";
    /** Kueue: the WorkloadPriorityClass of the Job. */
    public static final String KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class";

    private static final Pattern LABEL_VALUE = Pattern.compile("([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?");

    private final KubernetesExecutorSettings settings;

    public WorkerJobs(KubernetesExecutorSettings settings) {
        this.settings = settings;
    }

    /** The Job name of a compression job: prefix and id (a UUID: lowercase hex and dashes). */
    public String name(String jobId) {
        String name = settings.jobNamePrefix() + jobId.toLowerCase(Locale.ROOT);
        if (name.length() > 63 || !name.matches("[a-z0-9]([-a-z0-9]*[a-z0-9])?")) {
            throw new IllegalArgumentException("job id '" + jobId + "' does not make a Kubernetes Job name ('" + name + "')");
        }
        return name;
    }

    /** GPUs and GPU resource the job's pod gets: its request, else the defaults (none for a {@code cpu} job). */
    public JobResources placement(io.whittle.jobs.Job job) {
        JobResources r = job.resources();
        int gpus = r != null && r.gpus() != null ? r.gpus() : "cpu".equals(job.backend()) ? 0 : settings.gpuCount();
        String resource = r != null && r.gpuResource() != null ? r.gpuResource() : settings.gpuResource();
        return new JobResources(gpus, resource);
    }

    /** The Job for {@code job}. */
    public Job build(io.whittle.jobs.Job job) {
        String name = name(job.id());
        Map<String, String> ours = new LinkedHashMap<>();
        ours.put("app.kubernetes.io/name", "whittle");
        ours.put("app.kubernetes.io/component", "worker-job");
        ours.put(MANAGED_BY_LABEL, MANAGED_BY);
        ours.put(JOB_ID_LABEL, job.id());
        ours.put(METHOD_LABEL, labelValue(job.method()));

        PodTemplateSpec template = Serialization.clone(settings.podTemplate());
        ObjectMeta meta = template.getMetadata() == null ? new ObjectMeta() : template.getMetadata();
        template.setMetadata(meta);
        meta.setLabels(merge(meta.getLabels(), settings.labels(), ours));
        meta.setAnnotations(merge(meta.getAnnotations(), settings.annotations(), Map.of()));
        meta.setName(null);
        meta.setNamespace(null);

        PodSpec spec = template.getSpec() == null ? new PodSpec() : template.getSpec();
        template.setSpec(spec);
        spec.setRestartPolicy("Never"); // retries are new pods (backoffLimit); the pod failure policy needs Never
        if (settings.serviceAccountName() != null) {
            spec.setServiceAccountName(settings.serviceAccountName());
        }
        if (settings.priorityClassName() != null) {
            spec.setPriorityClassName(settings.priorityClassName());
        }
        if (!settings.nodeSelector().isEmpty()) {
            spec.setNodeSelector(merge(spec.getNodeSelector(), settings.nodeSelector(), Map.of()));
        }
        Container c = container(spec);
        fillContainer(c, job);

        Map<String, String> jobLabels = merge(settings.labels(), ours, Map.of());
        if (settings.queueName() != null) {
            jobLabels.put(KUEUE_QUEUE_LABEL, settings.queueName());
        }
        if (settings.workloadPriorityClass() != null) {
            jobLabels.put(KUEUE_PRIORITY_LABEL, settings.workloadPriorityClass());
        }
        return new JobBuilder()
                .withNewMetadata()
                    .withName(name)
                    .withNamespace(settings.namespace())
                    .withLabels(jobLabels)
                    .withAnnotations(settings.annotations().isEmpty() ? null : new LinkedHashMap<>(settings.annotations()))
                .endMetadata()
                .withNewSpec()
                    .withBackoffLimit(settings.backoffLimit())
                    .withActiveDeadlineSeconds(settings.activeDeadline() == null ? null : settings.activeDeadline().toSeconds())
                    .withTtlSecondsAfterFinished(settings.ttlAfterFinished() == null ? null
                            : (int) Math.min(Integer.MAX_VALUE, settings.ttlAfterFinished().toSeconds()))
                    .withPodFailurePolicy(new PodFailurePolicyBuilder()
                            // the worker found the job ended (failed, cancelled) or missing: another pod cannot help
                            .addToRules(new PodFailurePolicyRuleBuilder().withAction("FailJob")
                                    .withNewOnExitCodes().withContainerName(c.getName()).withOperator("In")
                                    .withValues(SingleJobWorker.EXIT_FINAL).endOnExitCodes().build())
                            // evicted or preempted (node drain, Kueue preemption): retry without counting it
                            .addToRules(new PodFailurePolicyRuleBuilder().withAction("Ignore")
                                    .addNewOnPodCondition().withType("DisruptionTarget").withStatus("True").endOnPodCondition()
                                    .build())
                            .build())
                    .withTemplate(template)
                .endSpec()
                .build();
    }

    private Container container(PodSpec spec) {
        PodTemplateSpec probe = new PodTemplateSpec(null, spec);
        Container c = KubernetesExecutorSettings.container(probe, settings.containerName());
        if (c == null) {
            c = new Container();
            c.setName(settings.containerName());
            List<Container> containers = spec.getContainers() == null ? new ArrayList<>() : new ArrayList<>(spec.getContainers());
            containers.add(c);
            spec.setContainers(containers);
        }
        return c;
    }

    private void fillContainer(Container c, io.whittle.jobs.Job job) {
        if (settings.image() != null && !settings.image().isBlank()) {
            c.setImage(settings.image());
        }
        if (settings.imagePullPolicy() != null) {
            c.setImagePullPolicy(settings.imagePullPolicy());
        }
        if (!settings.command().isEmpty()) {
            c.setCommand(new ArrayList<>(settings.command()));
        }
        c.setArgs(new ArrayList<>(List.of("worker", "--job", job.id())));
        if (c.getTerminationMessagePolicy() == null) {
            c.setTerminationMessagePolicy("FallbackToLogsOnError"); // the worker's one-line reason, or its last log lines
        }

        JobResources placement = placement(job);
        ResourceRequirements res = c.getResources() == null ? new ResourceRequirements() : c.getResources();
        Map<String, Quantity> limits = res.getLimits() == null ? new LinkedHashMap<>() : new LinkedHashMap<>(res.getLimits());
        Map<String, Quantity> requests = res.getRequests() == null ? new LinkedHashMap<>() : new LinkedHashMap<>(res.getRequests());
        // the job's GPU request replaces whatever GPU resource the template names
        limits.keySet().removeIf(this::isGpuResource);
        requests.keySet().removeIf(this::isGpuResource);
        if (placement.gpus() > 0) {
            limits.put(placement.gpuResource(), new Quantity(Integer.toString(placement.gpus())));
        }
        res.setLimits(limits.isEmpty() ? null : limits);
        res.setRequests(requests.isEmpty() ? null : requests);
        c.setResources(res);

        List<EnvVar> env = c.getEnv() == null ? new ArrayList<>() : new ArrayList<>(c.getEnv());
        // the lease owner is the pod: "held by whittle-<id>-x7k2p" names the pod that holds a job
        putIfAbsent(env, new EnvVarBuilder().withName("WHITTLE_WORKER_ID").withNewValueFrom().withNewFieldRef()
                .withFieldPath("metadata.name").endFieldRef().endValueFrom().build());
        if (placement.gpus() == 0) {
            // without a GPU request the NVIDIA device plugin would expose every GPU of the node to the container
            putIfAbsent(env, new EnvVar("NVIDIA_VISIBLE_DEVICES", "void", null));
        }
        c.setEnv(env);
    }

    private boolean isGpuResource(String name) {
        return name.equals(settings.gpuResource()) || name.startsWith("nvidia.com/")
                || settings.allowedGpuResources().stream().anyMatch(p -> p.equals(name)
                || p.endsWith("*") && name.startsWith(p.substring(0, p.length() - 1)));
    }

    private static void putIfAbsent(List<EnvVar> env, EnvVar v) {
        if (env.stream().noneMatch(e -> v.getName().equals(e.getName()))) {
            env.add(v);
        }
    }

    @SafeVarargs
    private static Map<String, String> merge(Map<String, String>... maps) {
        Map<String, String> out = new LinkedHashMap<>();
        for (Map<String, String> m : maps) {
            if (m != null) {
                out.putAll(m);
            }
        }
        return out;
    }

    /** {@code value} as a label value: invalid characters become '-', at most 63 characters. */
    static String labelValue(String value) {
        if (LABEL_VALUE.matcher(value).matches()) {
            return value;
        }
        String v = value.replaceAll("[^-A-Za-z0-9_.]", "-");
        v = v.length() > 63 ? v.substring(0, 63) : v;
        return v.replaceAll("^[^A-Za-z0-9]+", "").replaceAll("[^A-Za-z0-9]+$", "");
    }
}
