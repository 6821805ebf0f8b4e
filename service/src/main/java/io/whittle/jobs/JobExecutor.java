package io.whittle.jobs;

import io.whittle.methods.JobProgress;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;
import tools.jackson.databind.node.ObjectNode;

/**
 * Runs one claimed job. The worker owns the queue, lease, progress recording and cancellation; the executor does
 * the work ({@link EngineJobExecutor} runs the compression engine).
 */
@FunctionalInterface
public interface JobExecutor {

    /**
     * What a successful run produced.
     *
     * @param output         the published output directory
     * @param report         its report.json
     * @param reportJson     the report's content (timings, peak memory) for metrics
     * @param device         the device the run used (e.g. {@code cpu}, {@code cuda:0})
     * @param bytesProcessed bytes of model weights the run read
     */
    record Execution(Path output, Path report, ObjectNode reportJson, String device, long bytesProcessed) {
    }

    /**
     * Runs the job. Throws {@link java.util.concurrent.CancellationException} when {@code cancelled} turned true
     * (leaving no output), {@link JobRejectedException} when the job cannot run here, anything else on failure.
     */
    Execution execute(Job job, JobProgress progress, BooleanSupplier cancelled) throws Exception;
}
