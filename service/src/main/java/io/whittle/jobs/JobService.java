package io.whittle.jobs;

import io.whittle.methods.CompressionMethod;
import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.Methods;
import io.whittle.forward.CalibrationData.TextSampling;
import io.whittle.metrics.JobMetrics;
import io.whittle.model.ModelConfigException;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import tools.jackson.databind.SerializationFeature;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Accepting, reading and cancelling jobs (the API side of the queue). A submission is validated completely before a
 * job exists: paths against the storage roots, then everything the engine checks up front
 * ({@link JobRunner#prepare}: method, parameters against the method's descriptor, model family, data files, output
 * not taken). An idempotency key makes a retried submission return the job the first one created.
 */
public final class JobService {

    /** Backends a job may ask for. */
    public static final Set<String> BACKENDS = Set.of("auto", "cpu", "cuda");
    /** Largest accepted idempotency key. */
    public static final int MAX_IDEMPOTENCY_KEY = 200;

    private static final JsonMapper CANONICAL = JsonMapper.builder()
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS).build();

    private final JobStore store;
    private final StorageRoots roots;
    private final JobMetrics metrics;
    private final JobSignals signals;
    private final int maxAttempts;
    private final JobPlacement placement;

    /** A service whose jobs run on local worker slots ({@link JobPlacement#LOCAL}). */
    public JobService(JobStore store, StorageRoots roots, JobMetrics metrics, JobSignals signals, int maxAttempts) {
        this(store, roots, metrics, signals, maxAttempts, JobPlacement.LOCAL);
    }

    public JobService(JobStore store, StorageRoots roots, JobMetrics metrics, JobSignals signals, int maxAttempts,
                      JobPlacement placement) {
        if (maxAttempts < 1) {
            throw new IllegalArgumentException("max-attempts must be at least 1, got " + maxAttempts);
        }
        this.store = store;
        this.roots = roots;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.signals = signals == null ? new JobSignals() : signals;
        this.maxAttempts = maxAttempts;
        this.placement = placement;
    }

    /** The executor this service's jobs run on ({@code local} or {@code kubernetes}). */
    public String executor() {
        return placement.executor();
    }

    /**
     * A submission as a client states it: paths as given (relative ones are taken against the first model root, or
     * the output root for {@code output}), raw parameter values (strings, numbers, JSON nodes), and optionally where
     * to run ({@code resources}: GPUs of the job's pod, Kubernetes executor only).
     */
    public record Submission(String method, String model, String calibration, String eval, Map<String, ?> params,
                             String output, String backend, Integer priority, Sampling sampling, JobResources resources) {

        /** A submission without a placement request. */
        public Submission(String method, String model, String calibration, String eval, Map<String, ?> params,
                          String output, String backend, Integer priority, Sampling sampling) {
            this(method, model, calibration, eval, params, output, backend, priority, sampling, null);
        }
    }

    /** How text calibration files are windowed (defaults: the papers' 128 x 2048, seed 1234). */
    public record Sampling(Integer samples, Integer seqLen, Long seed) {
    }

    /** The job and whether this call created it (false: an earlier submission with the same idempotency key did). */
    public record Submitted(Job job, boolean created) {
    }

    /** A retried idempotency key whose request differs from the first one. */
    public static final class IdempotencyConflictException extends RuntimeException {
        private final String jobId;

        public IdempotencyConflictException(String key, String jobId) {
            super("Idempotency-Key '" + key + "' was already used for job " + jobId + " with a different request");
            this.jobId = jobId;
        }

        public String jobId() {
            return jobId;
        }
    }

    public Submitted submit(Submission s, String idempotencyKey) {
        String hash = requestHash(s);
        if (idempotencyKey != null) {
            if (idempotencyKey.isBlank() || idempotencyKey.length() > MAX_IDEMPOTENCY_KEY) {
                throw JobValidationException.field("Idempotency-Key", "must be 1 to " + MAX_IDEMPOTENCY_KEY + " characters");
            }
            Optional<Job> earlier = store.findByIdempotencyKey(idempotencyKey);
            if (earlier.isPresent()) {
                return replay(earlier.get(), idempotencyKey, hash);
            }
        }
        String id = UUID.randomUUID().toString();
        NewJob job = validate(s, id, idempotencyKey, hash);
        Job inserted = store.insert(job);
        if (!inserted.id().equals(id)) {
            return replay(inserted, idempotencyKey, hash); // a concurrent retry with the same key won the race
        }
        metrics.jobSubmitted(inserted.method());
        signals.signal();
        return new Submitted(inserted, true);
    }

    private static Submitted replay(Job earlier, String key, String hash) {
        if (!hash.equals(earlier.requestHash())) {
            throw new IdempotencyConflictException(key, earlier.id());
        }
        return new Submitted(earlier, false);
    }

    private NewJob validate(Submission s, String id, String idempotencyKey, String hash) {
        if (s.method() == null || s.method().isBlank()) {
            throw JobValidationException.field("method", "is required; available: " + methodNames());
        }
        CompressionMethod method = Methods.all().stream().filter(m -> m.descriptor().name().equals(s.method())).findFirst()
                .orElseThrow(() -> JobValidationException.field("method", "unknown method '" + s.method() + "'; available: "
                        + methodNames()));
        MethodDescriptor d = method.descriptor();
        String backend = s.backend() == null ? "auto" : s.backend();
        if (!BACKENDS.contains(backend)) {
            throw JobValidationException.field("backend", "'" + backend + "' is not one of auto, cpu, cuda");
        }
        JobResources resources = placement.checkResources(s.resources());
        if (resources != null && Integer.valueOf(0).equals(resources.gpus()) && "cuda".equals(backend)) {
            throw JobValidationException.field("resources.gpus", "must be at least 1 for a job with backend cuda");
        }
        int priority = s.priority() == null ? 0 : s.priority();
        if (priority < -1000 || priority > 1000) {
            throw JobValidationException.field("priority", "must be between -1000 and 1000, got " + priority);
        }
        TextSampling sampling = null;
        if (s.sampling() != null) {
            TextSampling dflt = TextSampling.PAPER_DEFAULT;
            try {
                sampling = new TextSampling(s.sampling().samples() == null ? dflt.samples() : s.sampling().samples(),
                        s.sampling().seqLen() == null ? dflt.seqLen() : s.sampling().seqLen(),
                        s.sampling().seed() == null ? dflt.seed() : s.sampling().seed());
            } catch (IllegalArgumentException e) {
                throw JobValidationException.field("sampling", e.getMessage());
            }
        }
        if (s.model() == null || s.model().isBlank()) {
            throw JobValidationException.field("model", "is required (a model directory under " + roots.modelRoots() + ")");
        }
        Path model = roots.resolveInput("model", s.model(), true);
        Path calibration = s.calibration() == null ? null : roots.resolveInput("calibration", s.calibration(), false);
        Path eval = s.eval() == null ? null : roots.resolveInput("eval", s.eval(), false);
        Path output = s.output() == null ? roots.defaultOutput(id) : roots.resolveOutput("output", s.output());

        ModelSpec spec;
        try {
            spec = ModelSpecs.load(model);
        } catch (ModelConfigException | IllegalArgumentException e) {
            throw JobValidationException.field("model", e.getMessage());
        }
        if (!d.families().contains(spec.family())) {
            throw JobValidationException.field("model", d.name() + " does not apply to " + spec.modelType()
                    + " models; it applies to " + d.families().stream().map(ModelSpec.Family::modelType).sorted().toList());
        }
        if (d.requiresCalibration() && calibration == null) {
            throw JobValidationException.field("calibration", "is required: " + d.name() + " needs calibration data");
        }
        if (Files.exists(output)) {
            try {
                io.whittle.model.CheckpointWriter.requireWritableTarget(output);
            } catch (IllegalArgumentException e) {
                throw JobValidationException.field("output", e.getMessage());
            }
        }
        JobRequest request = new JobRequest(d.name(), model, calibration, eval, s.params(), output, backend, sampling);
        JobRunner.Prepared prepared;
        try {
            prepared = JobRunner.prepare(request);
        } catch (InvalidParametersException e) {
            throw new JobValidationException(JobValidationException.VALIDATION_FAILED, e.errors());
        } catch (ModelConfigException e) {
            throw JobValidationException.field("model", e.getMessage());
        } catch (IllegalArgumentException e) {
            // what remains after the checks above: the method's own checks of parameters against the model
            throw JobValidationException.field("params", e.getMessage());
        }
        String samplingJson = null;
        if (sampling != null) {
            ObjectNode n = CANONICAL.createObjectNode();
            n.put("samples", sampling.samples());
            n.put("seqLen", sampling.seqLen());
            n.put("seed", sampling.seed());
            samplingJson = n.toString();
        }
        return new NewJob(id, d.name(), priority, model.toString(), calibration == null ? null : calibration.toString(),
                eval == null ? null : eval.toString(), output.toString(), prepared.params().toJson().toString(), samplingJson,
                backend, idempotencyKey, hash, maxAttempts, placement.executor(), resources);
    }

    private static List<String> methodNames() {
        return Methods.all().stream().map(m -> m.descriptor().name()).toList();
    }

    /** SHA-256 of the submission in a canonical JSON form: the same request always hashes the same. */
    static String requestHash(Submission s) {
        Map<String, Object> canonical = new LinkedHashMap<>();
        canonical.put("method", s.method());
        canonical.put("model", s.model());
        canonical.put("calibration", s.calibration());
        canonical.put("eval", s.eval());
        canonical.put("params", s.params() == null ? Map.of() : s.params());
        canonical.put("output", s.output());
        canonical.put("backend", s.backend() == null ? "auto" : s.backend());
        canonical.put("priority", s.priority() == null ? 0 : s.priority());
        canonical.put("sampling", s.sampling());
        if (s.resources() != null && !s.resources().isEmpty()) { // absent from the hash when not given: old keys still match
            canonical.put("resources", s.resources());
        }
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256")
                    .digest(CANONICAL.writeValueAsString(canonical).getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    public Optional<Job> get(String id) {
        return store.find(id);
    }

    /** One page of jobs, newest first, and the cursor of the next page (null at the end). */
    public record Page(List<Job> jobs, String nextCursor) {
    }

    public Page list(JobState state, String method, int limit, String cursor) {
        Long before = null;
        if (cursor != null && !cursor.isBlank()) {
            try {
                before = Long.parseLong(cursor);
            } catch (NumberFormatException e) {
                throw JobValidationException.field("cursor", "'" + cursor + "' is not a cursor this service returned");
            }
        }
        List<Job> jobs = store.list(state, method, before, limit + 1);
        String next = null;
        if (jobs.size() > limit) {
            jobs = jobs.subList(0, limit);
            next = Long.toString(jobs.get(limit - 1).seq());
        }
        return new Page(jobs, next);
    }

    /** Cancels a job; see {@link JobStore#requestCancel}. */
    public JobStore.CancelOutcome cancel(String id) {
        JobStore.CancelOutcome outcome = store.requestCancel(id);
        if (outcome == JobStore.CancelOutcome.CANCELLED || outcome == JobStore.CancelOutcome.REQUESTED) {
            store.find(id).ifPresent(j -> {
                if (outcome == JobStore.CancelOutcome.CANCELLED) {
                    metrics.jobCompleted(j.method(), "cancelled");
                }
                placement.cancelled(j);
            });
        }
        return outcome;
    }

    /** Number of jobs in each state. */
    public Map<JobState, Long> countByState() {
        return store.countByState();
    }
}
