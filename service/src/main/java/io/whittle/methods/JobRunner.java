package io.whittle.methods;

import io.whittle.compute.Backend;
import io.whittle.compute.Backends;
import io.whittle.compute.DeviceInfo;
import io.whittle.forward.CalibrationData;
import io.whittle.forward.Evaluation;
import io.whittle.forward.PipelineResult;
import io.whittle.forward.TokenBatch;
import io.whittle.model.Checkpoint;
import io.whittle.model.CheckpointWriter;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.function.BooleanSupplier;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Runs one job end to end, in two steps so that a service can reject a bad request before queueing it:
 * {@link #prepare} validates everything that can be checked without doing the work (method, parameters against
 * the descriptor and the model, model directory and config, calibration file, output path not taken), and
 * {@link Prepared#run} loads, runs the method, evaluates when asked, writes {@code report.json} and publishes the
 * output directory atomically. A failure or cancellation leaves no output directory.
 */
public final class JobRunner {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private JobRunner() {
    }

    /** A validated job, ready to run. */
    public record Prepared(JobRequest request, CompressionMethod method, MethodParams params, ModelSpec spec) {

        /** Runs the job; returns the published output directory and the report. */
        public JobResult run(JobProgress progress, BooleanSupplier cancelled) throws Exception {
            return JobRunner.execute(this, progress == null ? JobProgress.NONE : progress,
                    cancelled == null ? () -> false : cancelled);
        }
    }

    /** The published output directory and the report written into it. */
    public record JobResult(Path output, Path reportFile, ObjectNode report) {
    }

    public static Prepared prepare(JobRequest request) {
        if (request.method() == null || request.method().isBlank()) {
            throw new IllegalArgumentException("no method given");
        }
        CompressionMethod method = Methods.get(request.method());
        MethodDescriptor d = method.descriptor();
        MethodParams params = MethodParams.validate(d, request.params());
        if (request.model() == null) {
            throw new IllegalArgumentException("no model directory given");
        }
        if (!Files.isDirectory(request.model())) {
            throw new IllegalArgumentException("model directory " + request.model() + " does not exist");
        }
        ModelSpec spec = ModelSpecs.load(request.model());
        if (!d.families().contains(spec.family())) {
            throw new IllegalArgumentException(d.name() + " does not apply to " + spec.modelType() + " models; it applies to "
                    + d.families().stream().map(ModelSpec.Family::modelType).sorted().toList());
        }
        method.check(params, spec);
        if (d.requiresCalibration() && request.calibration() == null) {
            throw new IllegalArgumentException(d.name() + " needs calibration data (--calibration)");
        }
        for (Path p : new Path[] {request.calibration(), request.eval()}) {
            if (p != null && !Files.isRegularFile(p)) {
                throw new IllegalArgumentException("file " + p + " does not exist");
            }
        }
        if (request.output() == null) {
            throw new IllegalArgumentException("no output directory given (--out)");
        }
        CheckpointWriter.requireWritableTarget(request.output().toAbsolutePath().normalize());
        return new Prepared(request, method, params, spec);
    }

    static JobResult execute(Prepared job, JobProgress progress, BooleanSupplier cancelled) throws Exception {
        JobRequest req = job.request();
        ModelSpec spec = job.spec();
        long start = System.nanoTime();
        progress.update("load", -1, spec.numLayers(), 0.0);
        try (Checkpoint checkpoint = Checkpoint.open(req.model());
             HostAllocator alloc = HostAllocator.root().newChild("job", Long.MAX_VALUE);
             CheckpointWriter output = CheckpointWriter.create(req.output(), CheckpointWriter.DEFAULT_MAX_SHARD_BYTES);
             Backend backend = Backends.create(req.backend(), alloc)) {
            spec.requireValid(checkpoint);
            CalibrationData.Loaded calib = req.calibration() == null ? null
                    : CalibrationData.load(req.calibration(), spec.vocabSize(), req.model(), req.sampling());
            TokenBatch eval = null;
            if (req.eval() != null) {
                CalibrationData.Loaded e = CalibrationData.load(req.eval(), spec.vocabSize(), req.model(), req.sampling());
                if (e.isManifest()) {
                    throw new IllegalArgumentException("eval file " + req.eval() + " is an image manifest; --eval needs token sequences");
                }
                eval = e.batch();
            }
            JobContext ctx = new JobContext(req, job.params(), spec, checkpoint, calib == null ? null : calib.batch(), backend,
                    output, progress, cancelled, alloc);
            if (calib != null && calib.windowsRecord() != null) {
                output.writeJson("calibration-windows.json", calib.windowsRecord());
            }
            ObjectNode evalNode = null;
            try {
                long t = System.nanoTime();
                job.method().run(ctx);
                ctx.addStageSeconds("method", (System.nanoTime() - t) / 1e9);
                ctx.checkCancelled();
                output.seal();
                if (eval != null) {
                    evalNode = JSON.createObjectNode();
                    t = System.nanoTime();
                    evalNode.set("before", evalJson(Evaluation.evaluate(req.model(), eval, backend, alloc,
                            (s, l, n) -> progress.update("eval-before", l, n, l < 0 ? 0 : (double) l / n)), eval));
                    if (ctx.modelWritten()) {
                        ctx.checkCancelled();
                        Path twin = ctx.sealedEvaluationTwin(); // packed outputs: an engine-readable equivalent
                        evalNode.set("after", evalJson(Evaluation.evaluate(twin != null ? twin : output.stagingDirectory(), eval,
                                backend, alloc,
                                (s, l, n) -> progress.update("eval-after", l, n, l < 0 ? 0 : (double) l / n)), eval));
                    }
                    ctx.addStageSeconds("eval", (System.nanoTime() - t) / 1e9);
                }
            } finally {
                ctx.closeEvaluationTwin();
            }
            ObjectNode report = buildReport(job, ctx, calib, evalNode, backend.device(), alloc, start);
            output.writeJson("report.json", report);
            ctx.checkCancelled();
            progress.update("publish", -1, spec.numLayers(), 1.0);
            Path published = output.commit();
            return new JobResult(published, published.resolve("report.json"), report);
        }
    }

    private static ObjectNode evalJson(PipelineResult r, TokenBatch batch) {
        ObjectNode n = JSON.createObjectNode();
        n.put("sequences", batch.sequenceCount());
        n.put("tokens", r.predictedTokens());
        n.put("mean_nll", r.meanNll());
        n.put("perplexity", r.perplexity());
        return n;
    }

    private static ObjectNode buildReport(Prepared job, JobContext ctx, CalibrationData.Loaded calib, ObjectNode eval,
                                          DeviceInfo device, HostAllocator alloc, long start) {
        JobRequest req = job.request();
        ModelSpec spec = job.spec();
        ObjectNode r = JSON.createObjectNode();
        r.put("method", job.method().descriptor().name());
        r.put("whittle_version", io.whittle.methods.Version.get());
        r.put("finished_at", Instant.now().toString());
        r.set("params", job.params().toJson());
        ObjectNode model = r.putObject("model");
        model.put("path", req.model().toAbsolutePath().toString());
        model.put("model_type", spec.modelType());
        model.put("layers", spec.numLayers());
        model.put("parameters", ctx.checkpoint().tensorNames().stream().mapToLong(n -> ctx.checkpoint().entry(n).numel()).sum());
        if (calib != null) {
            ObjectNode c = r.putObject("calibration");
            c.put("path", req.calibration().toAbsolutePath().toString());
            if (calib.isManifest()) {
                c.put("format", "image-manifest");
                c.put("samples", calib.manifest().get("samples").size());
            } else {
                c.put("sequences", calib.batch().sequenceCount());
                c.put("tokens", calib.batch().totalTokens());
            }
            if (calib.windowsRecord() != null) {
                c.put("samples", req.sampling().samples());
                c.put("seq_len", req.sampling().seqLen());
                c.put("seed", req.sampling().seed());
                c.put("windows_file", "calibration-windows.json");
            }
        }
        ObjectNode b = r.putObject("backend");
        b.put("name", ctx.backend().name());
        b.set("device", JSON.valueToTree(device));
        r.set("result", ctx.report());
        if (eval != null) {
            r.set("eval", eval);
        }
        ObjectNode timings = r.putObject("timings");
        ctx.stageSeconds().forEach(timings::put);
        timings.put("total", (System.nanoTime() - start) / 1e9);
        r.put("peak_host_bytes", alloc.peakBytes());
        return r;
    }

    /** Parses the JSON report written by a run (for the service's report endpoint). */
    public static JsonNode readReport(Path file) throws java.io.IOException {
        return JSON.readTree(Files.readString(file));
    }
}
