package io.whittle.methods.camera.quant;

import io.whittle.model.Checkpoint;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.Shape;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The compressed-tensors {@code pack-quantized} format that vLLM and transformers load (INT group quantization,
 * one width for every quantized Linear). Per quantized Linear {@code <prefix>} (replacing {@code <prefix>.weight}):
 * <pre>
 * &lt;prefix&gt;.weight_packed      I32  [out, ceil(in / (32 / bits))]   {@link BitPacking#packInt32}
 * &lt;prefix&gt;.weight_scale       BF16 [out, in / group_size]          the weight dtype (scale_dtype null)
 * &lt;prefix&gt;.weight_zero_point  I32  [ceil(out / (32 / bits)), in / group_size]   asymmetric only, packed along dim 0
 * &lt;prefix&gt;.weight_shape       I64  [2] = [out, in]
 * </pre>
 * and {@code config.json} gains a {@code quantization_config} ({@link #quantizationConfig}). Routers,
 * shared_expert_gate, norms, embeddings and lm_head stay in the model dtype and must be named in {@code ignore}.
 * vLLM serves 4- and 8-bit (asymmetric only at 4/8 bits); other widths pack the same way but depend on the vLLM
 * version.
 */
public final class CompressedTensorsExport {

    public static final String FORMAT = "pack-quantized";
    public static final String QUANT_METHOD = "compressed-tensors";
    /** The compressed-tensors release whose output this mirrors (the fixture's; it is informational for loaders). */
    public static final String VERSION = "0.12.2";

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private CompressedTensorsExport() {
    }

    /**
     * Throws unless {@code m} can be written in this format: one width, one segment, whole groups.
     */
    public static void requireExportable(QuantizedMatrix m) {
        QuantLayout l = m.layout();
        if (!l.isUniform() || l.segmentCount() != 1) {
            throw new IllegalArgumentException("compressed-tensors needs one bit width per matrix; " + l + " mixes widths");
        }
        if (l.cols() % l.groupSize() != 0) {
            throw new IllegalArgumentException("compressed-tensors needs whole groups: group_size " + l.groupSize()
                    + " does not divide the input dimension " + l.cols());
        }
    }

    /** The tensors that replace {@code <prefix>.weight}. */
    public static List<TensorSource> tensors(String prefix, QuantizedMatrix m) {
        requireExportable(m);
        QuantLayout l = m.layout();
        int bits = l.uniformBits();
        int rows = l.rows();
        int cols = l.cols();
        int groups = l.groupCount();
        List<TensorSource> out = new ArrayList<>(4);
        out.add(TensorBytes.ints(prefix + ".weight_packed", Shape.of(rows, BitPacking.packedCols(cols, bits)),
                BitPacking.packInt32(m.codes(), rows, cols, bits)));
        out.add(TensorBytes.floats(prefix + ".weight_scale", l.scaleFormat().dtype(), Shape.of(rows, groups), m.scales()));
        if (!l.symmetric()) {
            out.add(TensorBytes.ints(prefix + ".weight_zero_point", Shape.of(BitPacking.packedCols(rows, bits), groups),
                    BitPacking.packInt32Rows(m.zeros(), rows, groups, bits)));
        }
        out.add(TensorBytes.longs(prefix + ".weight_shape", Shape.of(2), new long[]{rows, cols}));
        return out;
    }

    /**
     * Reads back the quantized Linear {@code <prefix>} written under {@code scheme}; the inverse of {@link #tensors}.
     */
    public static QuantizedMatrix read(Checkpoint checkpoint, String prefix, QuantScheme scheme) {
        long[] shape = checkpoint.readLongs(prefix + ".weight_shape");
        if (shape.length != 2) {
            throw new IllegalArgumentException("'" + prefix + ".weight_shape' must hold [out, in], got " + shape.length + " values");
        }
        int rows = Math.toIntExact(shape[0]);
        int cols = Math.toIntExact(shape[1]);
        QuantLayout l = QuantLayout.uniform(rows, cols, scheme);
        int bits = scheme.bits();
        int groups = l.groupCount();
        byte[] q = BitPacking.unpackInt32(TensorBytes.readInts(checkpoint, prefix + ".weight_packed",
                Shape.of(rows, BitPacking.packedCols(cols, bits))), rows, cols, bits);
        float[] scales = TensorBytes.readFloats(checkpoint, prefix + ".weight_scale", scheme.scaleFormat().dtype(),
                Shape.of(rows, groups));
        byte[] zeros = null;
        if (!scheme.symmetric()) {
            zeros = BitPacking.unpackInt32Rows(TensorBytes.readInts(checkpoint, prefix + ".weight_zero_point",
                    Shape.of(BitPacking.packedCols(rows, bits), groups)), rows, groups, bits);
        }
        return new QuantizedMatrix(l, q, scales, zeros);
    }

    /**
     * The {@code quantization_config} object for config.json, keys sorted as compressed-tensors writes them
     * ({@code json.dump(sort_keys=True)}), shaped like the llm-compressor W4A16 output in the fixtures.
     *
     * @param scheme      the one scheme of every quantized Linear
     * @param weightDtype the checkpoint's weight dtype; scales are stored in it ({@code scale_dtype: null})
     * @param targets     what is quantized: class names ({@code "Linear"}), module names or {@code re:} regexes
     * @param ignore      exact module names (without {@code .weight}) left unquantized: routers,
     *                    shared_expert_gate, lm_head and every other Linear matched by {@code targets} but not
     *                    quantized
     */
    public static ObjectNode quantizationConfig(QuantScheme scheme, DType weightDtype, List<String> targets, List<String> ignore) {
        if (scheme.scaleFormat().dtype() != weightDtype) {
            throw new IllegalArgumentException("compressed-tensors stores scales in the weight dtype " + weightDtype
                    + " but the scheme's scales are " + scheme.scaleFormat().dtype());
        }
        if (targets.isEmpty()) {
            throw new IllegalArgumentException("quantization_config needs at least one target");
        }
        ObjectNode qc = JSON.createObjectNode();
        ObjectNode group = qc.putObject("config_groups").putObject("group_0");
        group.put("format", FORMAT);
        group.putNull("input_activations");
        group.putNull("output_activations");
        ArrayNode t = group.putArray("targets");
        targets.forEach(t::add);
        ObjectNode w = group.putObject("weights");
        w.putNull("actorder");
        w.putNull("block_structure");
        w.put("dynamic", false);
        w.put("group_size", scheme.groupSize());
        w.put("num_bits", scheme.bits());
        w.put("observer", "minmax");
        w.putObject("observer_kwargs");
        w.putNull("scale_dtype");
        w.put("strategy", "group");
        w.put("symmetric", scheme.symmetric());
        w.put("type", "int");
        w.putNull("zp_dtype");
        qc.put("format", FORMAT);
        qc.putNull("global_compression_ratio");
        ArrayNode ig = qc.putArray("ignore");
        ignore.forEach(ig::add);
        qc.putNull("kv_cache_scheme");
        qc.put("quant_method", QUANT_METHOD);
        qc.put("quantization_status", "compressed");
        qc.putObject("sparsity_config");
        qc.putObject("transform_config");
        qc.put("version", VERSION);
        return qc;
    }
}
