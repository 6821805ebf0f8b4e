package io.whittle.app;

import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.whittle.jobs.JobSignals;
import io.whittle.jobs.JobStore;
import io.whittle.jobs.WorkerPool;
import io.whittle.jobs.kubernetes.KubernetesExecutor;
import io.whittle.jobs.kubernetes.KubernetesExecutorSettings;
import io.whittle.metrics.MicrometerJobMetrics;
import java.time.Clock;
import java.time.Duration;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Conditional;
import org.springframework.context.annotation.Configuration;

/**
 * The Kubernetes executor of an API process with {@code whittle.executor=kubernetes}: the fabric8 client (in-cluster
 * service account, or the kubeconfig, or {@code whittle.executor.kubernetes.api-server-url}), the settings with the
 * pod template read from {@code pod-template-file}, and the leader loop started and stopped with the application.
 */
@Configuration(proxyBeanMethods = false)
@Conditional(ProcessConditions.KubernetesExecutor.class)
public class KubernetesExecutorConfiguration {

    @Bean(destroyMethod = "close")
    KubernetesClient kubernetesClient(WhittleProperties props) {
        String url = props.getExecutor().getKubernetes().getApiServerUrl();
        Config config = url == null || url.isBlank() ? Config.autoConfigure(null)
                : new ConfigBuilder(Config.autoConfigure(null)).withMasterUrl(url).build();
        return new KubernetesClientBuilder().withConfig(config).build();
    }

    @Bean
    KubernetesExecutor kubernetesExecutor(KubernetesClient client, JobStore store, JobSignals signals,
                                          MicrometerJobMetrics metrics, Clock clock, WhittleProperties props) {
        return new KubernetesExecutor(client, settings(props.getExecutor().getKubernetes(), client.getNamespace()), store,
                signals, metrics, clock, WorkerPool.defaultWorkerId());
    }

    /**
     * The executor's settings from {@code whittle.executor.kubernetes.*} (reading the pod template file);
     * {@code clientNamespace} is the default namespace (the pod's own, or the kubeconfig's).
     */
    public static KubernetesExecutorSettings settings(WhittleProperties.Kubernetes k, String clientNamespace) {
        String namespace = k.getNamespace() != null && !k.getNamespace().isBlank() ? k.getNamespace() : clientNamespace;
        if (namespace == null || namespace.isBlank()) {
            throw new IllegalStateException("whittle.executor.kubernetes.namespace is not set and the Kubernetes client "
                    + "found no namespace (no service account namespace file, KUBERNETES_NAMESPACE or kubeconfig context)");
        }
        PodTemplateSpec template = k.getPodTemplateFile() == null ? null
                : KubernetesExecutorSettings.loadPodTemplate(k.getPodTemplateFile());
        return new KubernetesExecutorSettings(namespace, template, blankToNull(k.getImage()), blankToNull(k.getImagePullPolicy()),
                blankToNull(k.getServiceAccountName()), k.getContainerName(), k.getCommand(), k.getGpuResource(),
                k.getGpuCount(), k.getMaxGpus(), k.getAllowedGpuResources(), k.getNodeSelector(), k.getLabels(),
                k.getAnnotations(), k.getBackoffLimit(), zeroToNull(k.getActiveDeadline()), zeroToNull(k.getTtlAfterFinished()),
                blankToNull(k.getQueueName()), blankToNull(k.getPriorityClassName()), blankToNull(k.getWorkloadPriorityClass()),
                k.getJobNamePrefix(), k.getPollInterval(), k.getLeaderLease(), k.getUnschedulableTimeout(),
                k.getStartTimeout(), k.getFinishedWindow());
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s.trim();
    }

    private static Duration zeroToNull(Duration d) {
        return d == null || d.isZero() ? null : d;
    }

    /** Runs the executor's leader loop while the application runs. */
    @Bean
    SmartLifecycle kubernetesExecutorLifecycle(KubernetesExecutor executor) {
        return new SmartLifecycle() {
            @Override
            public void start() {
                executor.start();
            }

            @Override
            public void stop() {
                executor.stop();
            }

            @Override
            public boolean isRunning() {
                return executor.isRunning();
            }
        };
    }
}
