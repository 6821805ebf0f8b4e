package io.whittle.methods.camera.quant;

import io.whittle.tensor.DType;
import java.util.Locale;
import java.util.Map;

/**
 * The CAMERA-Q quantization parameters of issue 3, validated together so that a bad job fails before any work:
 * {@code bits} (default 3,2,1), {@code fractions} (0.125,0.75,0.125), {@code group_size} (128, along the input
 * dimension), {@code quantizer} ({@code gptq} | {@code rtn}), {@code damp} (0.01), {@code sym} (false) and
 * {@code export} ({@code packed} | {@code dequantized} | {@code compressed-tensors}).
 */
public record CameraQOptions(BitAllocation allocation, int groupSize, Quantizer quantizer, double damp, boolean symmetric,
                             Export export) {

    public static final int DEFAULT_GROUP_SIZE = 128;

    /** How weights are rounded. */
    public enum Quantizer {
        GPTQ, RTN;

        public static Quantizer parse(String text) {
            return switch (text.trim().toLowerCase(Locale.ROOT)) {
                case "gptq" -> GPTQ;
                case "rtn" -> RTN;
                default -> throw new IllegalArgumentException("quantizer must be gptq or rtn, got '" + text + "'");
            };
        }

        public String wireName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** What is written. */
    public enum Export {
        PACKED("packed"), DEQUANTIZED("dequantized"), COMPRESSED_TENSORS("compressed-tensors");

        private final String wireName;

        Export(String wireName) {
            this.wireName = wireName;
        }

        public String wireName() {
            return wireName;
        }

        public static Export parse(String text) {
            for (Export e : values()) {
                if (e.wireName.equals(text.trim().toLowerCase(Locale.ROOT))) {
                    return e;
                }
            }
            throw new IllegalArgumentException("export must be packed, dequantized or compressed-tensors, got '" + text + "'");
        }
    }

    public CameraQOptions {
        if (allocation == null || quantizer == null || export == null) {
            throw new IllegalArgumentException("allocation, quantizer and export are required");
        }
        if (groupSize < 1) {
            throw new IllegalArgumentException("group_size must be a positive number of input columns, got " + groupSize);
        }
        GptqQuantizer.requireDamp(damp);
        if (export == Export.COMPRESSED_TENSORS && !allocation.isSingleWidth()) {
            throw new IllegalArgumentException("export=compressed-tensors needs one width for every micro-expert (e.g. bits=4 "
                    + "fractions=1); got " + allocation);
        }
    }

    public static CameraQOptions defaults() {
        return new CameraQOptions(BitAllocation.defaults(), DEFAULT_GROUP_SIZE, Quantizer.GPTQ, GptqQuantizer.DEFAULT_DAMP,
                false, Export.PACKED);
    }

    /**
     * Reads the keys above from job parameters (absent keys take defaults, a single {@code bits} width implies
     * {@code fractions=1}; other keys are ignored, they belong to other parts of the method).
     */
    public static CameraQOptions parse(Map<String, String> params) {
        String bits = params.getOrDefault("bits", "3,2,1");
        String fractions = params.get("fractions");
        if (fractions == null) {
            if (!params.containsKey("bits")) {
                fractions = "0.125,0.75,0.125";
            } else if (!bits.contains(",")) {
                fractions = "1"; // a single width covers every micro-expert
            } else {
                throw new IllegalArgumentException("bits=" + bits + " needs fractions (one per width)");
            }
        }
        BitAllocation allocation = BitAllocation.parse(bits, fractions);
        int groupSize;
        String g = params.getOrDefault("group_size", Integer.toString(DEFAULT_GROUP_SIZE));
        try {
            groupSize = Integer.parseInt(g.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("group_size must be an integer, got '" + g + "'");
        }
        double damp;
        String d = params.getOrDefault("damp", Double.toString(GptqQuantizer.DEFAULT_DAMP));
        try {
            damp = Double.parseDouble(d.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("damp must be a number, got '" + d + "'");
        }
        String sym = params.getOrDefault("sym", "false").trim().toLowerCase(Locale.ROOT);
        if (!sym.equals("true") && !sym.equals("false")) {
            throw new IllegalArgumentException("sym must be true or false, got '" + params.get("sym") + "'");
        }
        return new CameraQOptions(allocation, groupSize, Quantizer.parse(params.getOrDefault("quantizer", "gptq")), damp,
                sym.equals("true"), Export.parse(params.getOrDefault("export", "packed")));
    }

    /**
     * Checks the options against a model before work starts: group_size must divide the hidden size (the input
     * dimension of W_gate/W_up) and, for compressed-tensors, every intermediate size (the input dimension of W_down;
     * the packed format lets the last group of a width slice be shorter instead).
     */
    public void requireCompatible(long hiddenSize, long... intermediateSizes) {
        QuantScheme probe = new QuantScheme(QuantScheme.MIN_BITS, groupSize, symmetric, ScaleFormat.F16);
        probe.requireDivides(hiddenSize, "hidden_size");
        if (export == Export.COMPRESSED_TENSORS) {
            for (long f : intermediateSizes) {
                probe.requireDivides(f, "the expert intermediate size");
            }
        }
    }

    /** F16 for Whittle's formats; the checkpoint's weight dtype for compressed-tensors (its scales are stored so). */
    public ScaleFormat scaleFormat(DType weightDtype) {
        return export == Export.COMPRESSED_TENSORS ? ScaleFormat.of(weightDtype) : ScaleFormat.F16;
    }

    /** The single width of a compressed-tensors export. */
    public QuantScheme uniformScheme(DType weightDtype) {
        int[] bits = allocation.bits();
        double[] fr = allocation.fractions();
        for (int k = 0; k < bits.length; k++) {
            if (fr[k] > 0) {
                return new QuantScheme(bits[k], groupSize, symmetric, scaleFormat(weightDtype));
            }
        }
        throw new IllegalStateException("no class has a positive fraction");
    }
}
