package io.whittle.jobs;

import io.whittle.compute.BackendProvider;
import io.whittle.compute.Backends;
import io.whittle.compute.DeviceInfo;
import io.whittle.forward.CalibrationData.TextSampling;
import io.whittle.methods.JobProgress;
import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Runs a job with the compression engine ({@link JobRunner}): re-checks its paths against the storage roots,
 * removes staging directories that dead earlier attempts left beside the output, validates the request again and
 * runs it. The engine writes into a staging directory and renames it into place only when complete.
 */
public final class EngineJobExecutor implements JobExecutor {

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final Logger log = LoggerFactory.getLogger(EngineJobExecutor.class);

    private final StorageRoots roots;

    public EngineJobExecutor(StorageRoots roots) {
        this.roots = roots;
    }

    @Override
    public Execution execute(Job job, JobProgress progress, BooleanSupplier cancelled) throws Exception {
        try {
            roots.recheck(job);
        } catch (JobValidationException e) {
            throw new JobRejectedException(JobErrorCodes.INVALID_JOB, e.getMessage(), e);
        }
        Path output = Path.of(job.output());
        removeStaleStaging(output);
        if (Files.exists(output) && !isEmptyDirectory(output)) {
            throw new JobRejectedException(JobErrorCodes.OUTPUT_EXISTS, "output " + output + " already exists"
                    + (job.attempt() > 1 ? " (an earlier attempt may have published it before its worker died)" : ""), null);
        }
        checkBackend(job.backend());
        JobRequest request = toRequest(job);
        JobRunner.Prepared prepared;
        try {
            prepared = JobRunner.prepare(request);
        } catch (RuntimeException e) {
            throw new JobRejectedException(JobErrorCodes.INVALID_JOB, e.getMessage(), e);
        }
        JobRunner.JobResult result = prepared.run(progress, cancelled);
        JsonNode backend = result.report().path("backend");
        String device = backend.path("name").isString() ? backend.path("name").stringValue() : null;
        return new Execution(result.output(), result.reportFile(), result.report(), device, weightBytes(Path.of(job.model())));
    }

    /** The engine request a stored job stands for. */
    public static JobRequest toRequest(Job job) {
        TextSampling sampling = null;
        if (job.samplingJson() != null) {
            JsonNode s = JSON.readTree(job.samplingJson());
            TextSampling d = TextSampling.PAPER_DEFAULT;
            sampling = new TextSampling(s.path("samples").asInt(d.samples()), s.path("seqLen").asInt(d.seqLen()),
                    s.path("seed").asLong(d.seed()));
        }
        JsonNode params = JSON.readTree(job.paramsJson());
        java.util.Map<String, JsonNode> values = new java.util.LinkedHashMap<>();
        params.properties().forEach(e -> values.put(e.getKey(), e.getValue()));
        return new JobRequest(job.method(), Path.of(job.model()), job.calibration() == null ? null : Path.of(job.calibration()),
                job.eval() == null ? null : Path.of(job.eval()), values, Path.of(job.output()), job.backend(), sampling);
    }

    /** Fails with {@link JobErrorCodes#BACKEND_UNAVAILABLE} when the requested backend cannot run here. */
    static void checkBackend(String requested) {
        List<BackendProvider> providers = Backends.providers();
        if ("auto".equals(requested)) {
            if (providers.stream().noneMatch(p -> p.probe().usable())) {
                throw new JobRejectedException(JobErrorCodes.BACKEND_UNAVAILABLE, "no usable compute backend on this worker", null);
            }
            return;
        }
        for (BackendProvider p : providers) {
            if (p.name().equals(requested)) {
                DeviceInfo d = p.probe();
                if (!d.usable()) {
                    throw new JobRejectedException(JobErrorCodes.BACKEND_UNAVAILABLE,
                            "backend '" + requested + "' is not usable on this worker: " + d.reason(), null);
                }
                return;
            }
        }
        throw new JobRejectedException(JobErrorCodes.BACKEND_UNAVAILABLE, "backend '" + requested
                + "' is not available in this build of Whittle", null);
    }

    /**
     * Deletes {@code .<name>.whittle-tmp-*} directories beside the output: partial outputs of attempts whose worker
     * died. They are never published, and a new attempt writes a fresh one of its own, so this is best effort: a
     * directory that cannot be removed now (a stalled worker that lost its lease may still be writing into it, and
     * removes it itself when it notices) is left with a warning.
     */
    static void removeStaleStaging(Path output) {
        Path parent = output.getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            return;
        }
        String prefix = "." + output.getFileName() + ".whittle-tmp-";
        List<Path> stale;
        try (Stream<Path> s = Files.list(parent)) {
            stale = s.filter(x -> x.getFileName().toString().startsWith(prefix)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("listing " + parent + ": " + e.getMessage(), e);
        }
        for (Path p : stale) {
            try {
                deleteRecursively(p);
            } catch (IOException | UncheckedIOException e) {
                log.warn("could not remove the stale staging directory {} (yet): {}", p, e.toString());
            }
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static boolean isEmptyDirectory(Path p) throws IOException {
        if (!Files.isDirectory(p)) {
            return false;
        }
        try (Stream<Path> s = Files.list(p)) {
            return s.findAny().isEmpty();
        }
    }

    private static long weightBytes(Path model) throws IOException {
        try (Stream<Path> s = Files.list(model)) {
            long total = 0;
            for (Path p : s.filter(x -> x.getFileName().toString().endsWith(".safetensors")).toList()) {
                total += Files.size(p);
            }
            return total;
        }
    }
}
