package io.whittle.methods;

import io.whittle.compute.Backend;
import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.PipelineResult;
import io.whittle.forward.TokenBatch;
import io.whittle.model.Checkpoint;
import io.whittle.model.CheckpointWriter;
import io.whittle.model.ModelSpec;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Everything a method run gets: the request, the validated parameters, the model (spec and open checkpoint), the
 * calibration tokens, the backend, the output (a staging checkpoint writer, published by the runner on success),
 * the report object the method fills, progress, cancellation and a host allocator whose peak is reported.
 */
public final class JobContext {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final JobRequest request;
    private final MethodParams params;
    private final ModelSpec spec;
    private final Checkpoint checkpoint;
    private final TokenBatch calibration;
    private final Backend backend;
    private final CheckpointWriter output;
    private final ObjectNode report = JSON.createObjectNode();
    private final JobProgress progress;
    private final BooleanSupplier cancelled;
    private final HostAllocator allocator;
    private final Map<String, Double> stageSeconds = new LinkedHashMap<>();
    private boolean modelWritten;
    private Map<Integer, List<String>> tensorsByLayer;
    private CheckpointWriter evaluationTwin;

    JobContext(JobRequest request, MethodParams params, ModelSpec spec, Checkpoint checkpoint, TokenBatch calibration,
               Backend backend, CheckpointWriter output, JobProgress progress, BooleanSupplier cancelled,
               HostAllocator allocator) {
        this.request = request;
        this.params = params;
        this.spec = spec;
        this.checkpoint = checkpoint;
        this.calibration = calibration;
        this.backend = backend;
        this.output = output;
        this.progress = progress;
        this.cancelled = cancelled;
        this.allocator = allocator;
    }

    public JobRequest request() {
        return request;
    }

    public MethodParams params() {
        return params;
    }

    public ModelSpec spec() {
        return spec;
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public Path modelDirectory() {
        return request.model();
    }

    /** Calibration tokens, or null when the method needs none and none were given. */
    public TokenBatch calibration() {
        return calibration;
    }

    public Backend backend() {
        return backend;
    }

    /** The staging writer of the output directory; the runner seals and publishes it. */
    public CheckpointWriter output() {
        return output;
    }

    /** Method-specific report content; the runner adds the common fields around it. */
    public ObjectNode report() {
        return report;
    }

    public JobProgress progress() {
        return progress;
    }

    public HostAllocator allocator() {
        return allocator;
    }

    /** Throws {@link CancellationException} when the job has been cancelled (call at layer boundaries). */
    public void checkCancelled() {
        if (cancelled.getAsBoolean()) {
            throw new CancellationException("job cancelled");
        }
    }

    public BooleanSupplier cancelled() {
        return cancelled;
    }

    /** Adds to the time of a named stage (reported under {@code timings}). */
    public void addStageSeconds(String stage, double seconds) {
        stageSeconds.merge(stage, seconds, Double::sum);
    }

    public Map<String, Double> stageSeconds() {
        return stageSeconds;
    }

    /** Pipeline options for this job: the given mode, this job's allocator and cancellation. */
    public LayerwisePipeline.Options pipelineOptions(LayerwisePipeline.Mode mode, boolean computeNll) {
        return new LayerwisePipeline.Options(mode, LayerwisePipeline.DEFAULT_GROUP_TOKENS, computeNll, allocator, cancelled);
    }

    /**
     * Runs the layer-wise pipeline over the calibration tokens with the visitor, reporting progress as
     * {@code stage} and adding the pipeline's stage times to this job's timings.
     */
    public PipelineResult runPipeline(String stage, LayerVisitor visitor, LayerwisePipeline.Mode mode) {
        if (calibration == null) {
            throw new IllegalArgumentException(params.method() + " needs calibration token sequences (--calibration)"
                    + (request.calibration() != null ? "; " + request.calibration() + " is an image manifest" : ""));
        }
        PipelineResult r = LayerwisePipeline.run(spec, checkpoint, backend, calibration, visitor, pipelineOptions(mode, false),
                (s, layer, layers) -> progress.update(stage, layer, layers,
                        layer < 0 ? (s.equals("embed") ? 0.0 : 1.0) : (double) layer / layers));
        r.stageSeconds().forEach((k, v) -> addStageSeconds(stage + "." + k, v));
        return r;
    }

    /**
     * Writes one finished layer: changed tensors in their original dtype from the fp32 values, every other tensor
     * copied byte for byte from the input.
     */
    public void writeLayer(LayerWeights weights) {
        List<TensorSource> group = new ArrayList<>();
        for (String name : checkpointTensorsOfLayer(weights.layer())) {
            if (!weights.contains(name)) {
                group.add(checkpoint.copyOf(name)); // tensors the spec does not use (e.g. old rotary buffers) stay
            }
        }
        for (String name : weights.names()) {
            group.add(weights.changed().contains(name)
                    ? TensorSource.ofFloat(name, weights.dtype(name), weights.get(name))
                    : checkpoint.copyOf(name));
        }
        output.writeTensors(group);
        modelWritten = true;
    }

    /** The checkpoint's tensor names of each decoder layer, grouped once (a model can have 10^4 tensors). */
    private List<String> checkpointTensorsOfLayer(int layer) {
        if (tensorsByLayer == null) {
            tensorsByLayer = new java.util.HashMap<>();
            String layerPrefix = spec.decoderPrefix() + "layers.";
            for (String name : checkpoint.tensorNames()) {
                if (name.startsWith(layerPrefix)) {
                    int end = name.indexOf('.', layerPrefix.length());
                    try {
                        int l = Integer.parseInt(name.substring(layerPrefix.length(), end < 0 ? name.length() : end));
                        tensorsByLayer.computeIfAbsent(l, k -> new ArrayList<>()).add(name);
                    } catch (NumberFormatException ignored) {
                        // a non-numbered name under the layers prefix does not occur in supported checkpoints
                    }
                }
            }
        }
        return tensorsByLayer.getOrDefault(layer, List.of());
    }

    /**
     * Copies every non-decoder-layer tensor (embeddings, final norm, lm_head, vision tower...) and the model
     * directory's auxiliary files unchanged; the caller writes a replacement config.json afterwards if needed.
     */
    public void writeNonLayerTensorsAndFiles() {
        String layerPrefix = spec.decoderPrefix() + "layers.";
        List<TensorSource> rest = new ArrayList<>();
        for (String name : checkpoint.tensorNames()) {
            if (!name.startsWith(layerPrefix)) {
                rest.add(checkpoint.copyOf(name));
            }
        }
        output.writeTensors(rest);
        for (Path p : checkpoint.auxiliaryFiles()) {
            output.copyFile(p);
        }
        modelWritten = true;
    }

    boolean modelWritten() {
        return modelWritten;
    }

    /**
     * A private writer for an engine-readable twin of an output the engine cannot read back itself (a packed
     * quantized format): a complete checkpoint (every tensor, config.json) that decodes to the same weights. When a
     * method writes one, the runner evaluates "after" on it instead of on the output. It lives in a hidden directory
     * beside the output's staging directory, is never published, and is deleted when the job ends, whatever the
     * outcome. Created on first use.
     */
    public CheckpointWriter evaluationTwin() {
        if (evaluationTwin == null) {
            Path staging = output.stagingDirectory();
            evaluationTwin = CheckpointWriter.create(staging.resolveSibling(staging.getFileName() + "-eval-twin"),
                    CheckpointWriter.DEFAULT_MAX_SHARD_BYTES);
        }
        return evaluationTwin;
    }

    /** The twin's directory once sealed, or null when the method wrote none. */
    Path sealedEvaluationTwin() {
        if (evaluationTwin == null) {
            return null;
        }
        evaluationTwin.seal();
        return evaluationTwin.stagingDirectory();
    }

    /** Deletes the twin, if any. */
    void closeEvaluationTwin() {
        if (evaluationTwin != null) {
            evaluationTwin.close();
            evaluationTwin = null;
        }
    }
}
