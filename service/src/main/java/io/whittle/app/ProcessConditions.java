package io.whittle.app;

import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.Condition;
import org.springframework.context.annotation.ConditionContext;
import org.springframework.core.env.Environment;
import org.springframework.core.type.AnnotatedTypeMetadata;

/** What this process runs, from {@code whittle.role}, {@code whittle.executor} and {@code whittle.worker.job}. */
final class ProcessConditions {

    private ProcessConditions() {
    }

    static WhittleProperties properties(Environment env) {
        return Binder.get(env).bindOrCreate("whittle", WhittleProperties.class);
    }

    /** Local worker slots: role {@code worker} or {@code all}, executor {@code local}, not a single-job run. */
    static final class WorkerSlots implements Condition {
        @Override
        public boolean matches(ConditionContext context, AnnotatedTypeMetadata metadata) {
            return properties(context.getEnvironment()).runsWorkerSlots();
        }
    }

    /** The Kubernetes executor's dispatcher and reconciler: an API process with executor {@code kubernetes}. */
    static final class KubernetesExecutor implements Condition {
        @Override
        public boolean matches(ConditionContext context, AnnotatedTypeMetadata metadata) {
            return properties(context.getEnvironment()).runsKubernetesExecutor();
        }
    }

    /** {@code whittle worker --job <id>}: one job, then exit. */
    static final class SingleJob implements Condition {
        @Override
        public boolean matches(ConditionContext context, AnnotatedTypeMetadata metadata) {
            return properties(context.getEnvironment()).getWorker().runsSingleJob();
        }
    }
}
