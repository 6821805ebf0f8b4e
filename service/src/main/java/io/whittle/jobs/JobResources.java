package io.whittle.jobs;

import java.util.regex.Pattern;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * The placement a job asks for (the {@code resources} of a request; Kubernetes executor only): how many GPUs and of
 * which Kubernetes extended resource, e.g. one {@code nvidia.com/mig-3g.40gb} MIG slice. A null field takes the
 * executor's configured default.
 *
 * @param gpus        number of GPUs (or MIG slices) the job's pod requests; 0 for a CPU-only pod
 * @param gpuResource the extended resource name, e.g. {@code nvidia.com/gpu} or {@code nvidia.com/mig-3g.40gb}
 */
public record JobResources(Integer gpus, String gpuResource) {

    private static final JsonMapper JSON = JsonMapper.builder().build();
    /** A qualified Kubernetes extended resource name: {@code domain/name}. */
    private static final Pattern RESOURCE_NAME = Pattern.compile(
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?");

    public JobResources {
        if (gpus != null && gpus < 0) {
            throw new IllegalArgumentException("gpus must be 0 or more, got " + gpus);
        }
        if (gpuResource != null && (gpuResource.length() > 253 || !RESOURCE_NAME.matcher(gpuResource).matches())) {
            throw new IllegalArgumentException("gpuResource '" + gpuResource
                    + "' is not a Kubernetes extended resource name (domain/name, e.g. nvidia.com/gpu)");
        }
    }

    public boolean isEmpty() {
        return gpus == null && gpuResource == null;
    }

    /** The stored form: {@code {"gpus": n, "gpuResource": "..."}} with only the fields that are set. */
    public String toJson() {
        ObjectNode n = JSON.createObjectNode();
        if (gpus != null) {
            n.put("gpus", gpus);
        }
        if (gpuResource != null) {
            n.put("gpuResource", gpuResource);
        }
        return n.toString();
    }

    /** Parses the stored form; null for null. */
    public static JobResources fromJson(String json) {
        if (json == null) {
            return null;
        }
        JsonNode n = JSON.readTree(json);
        return new JobResources(n.path("gpus").isNumber() ? n.path("gpus").asInt() : null,
                n.path("gpuResource").isString() ? n.path("gpuResource").stringValue() : null);
    }
}
