package io.whittle.api;

import io.swagger.v3.oas.annotations.media.Schema;
import java.util.Map;
import tools.jackson.databind.JsonNode;

/**
 * Body of {@code POST /api/v1/jobs}. Unknown fields are rejected. Paths are server paths: model, calibration and
 * eval under a configured model root, output under the output root (relative paths are taken against those roots).
 */
@Schema(description = "A compression job to run")
public record SubmitJobRequest(
        @Schema(description = "Method name, see GET /api/v1/methods", example = "camera-p", requiredMode = Schema.RequiredMode.REQUIRED)
        String method,
        @Schema(description = "Hugging Face model directory (read-only)", requiredMode = Schema.RequiredMode.REQUIRED)
        String model,
        @Schema(description = "Calibration tokens: .json, .safetensors, .txt or .jsonl")
        String calibration,
        @Schema(description = "Token file for perplexity before and after")
        String eval,
        @Schema(description = "Method parameters, validated against GET /api/v1/methods")
        Map<String, JsonNode> params,
        @Schema(description = "Output directory (must not exist or be empty); default: <output-root>/<job id>")
        String output,
        @Schema(description = "auto, cpu or cuda", example = "auto")
        String backend,
        @Schema(description = "Higher runs first (-1000..1000)", example = "0")
        Integer priority,
        @Schema(description = "Windowing of text calibration files")
        Sampling sampling,
        @Schema(description = "GPUs of the job's pod (Kubernetes executor only; refused with the local executor)")
        Resources resources) {

    /**
     * Where the job's pod runs (Kubernetes executor): how many GPUs, and which GPU resource (e.g. a MIG slice
     * {@code nvidia.com/mig-3g.40gb}); unset fields take the executor's defaults.
     */
    public record Resources(
            @Schema(description = "GPUs (or MIG slices) of the job's pod; 0 for a CPU-only pod", example = "1")
            Integer gpus,
            @Schema(description = "Kubernetes GPU resource name", example = "nvidia.com/gpu")
            String gpuResource) {
    }

    /** How text calibration files are cut into windows. */
    public record Sampling(Integer samples, Integer seqLen, Long seed) {
    }
}
