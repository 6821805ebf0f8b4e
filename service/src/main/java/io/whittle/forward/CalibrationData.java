package io.whittle.forward;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.model.safetensors.TensorEntry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Loads calibration (or evaluation) token sequences:
 * <ul>
 *   <li>{@code .json}: {@code {"input_ids": [[...], ...]}};</li>
 *   <li>{@code .safetensors}: an integer tensor {@code input_ids} of shape [N, S] (or [S] for one sequence);</li>
 *   <li>{@code .txt} (plain text) or {@code .jsonl} (one JSON object with a {@code text} field per line):
 *       tokenized with the model's {@code tokenizer.json} (Hugging Face tokenizers, offline), documents joined by
 *       a blank line, then {@code samples} random windows of {@code seqLen} tokens drawn with {@code seed} (the
 *       papers' protocol: 128 x 2048, seed 1234; start = uniform in [0, len - seqLen)).</li>
 * </ul>
 * Every token id is checked against the vocabulary; an id out of range names its sequence and position.
 */
public final class CalibrationData {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** How to draw windows from a text source. */
    public record TextSampling(int samples, int seqLen, long seed) {
        public static final TextSampling PAPER_DEFAULT = new TextSampling(128, 2048, 1234);

        public TextSampling {
            if (samples < 1 || seqLen < 2) {
                throw new IllegalArgumentException("text sampling needs --samples >= 1 and --seq-len >= 2 (got " + samples
                        + ", " + seqLen + ")");
            }
        }
    }

    /**
     * The sequences and, for text sources, how they were drawn (to save beside the output). For an image manifest
     * (a {@code .json} whose root has a {@code samples} array: image + prompt calibration, read by the methods
     * that take it, e.g. visual-prune) {@code batch} is null and {@code manifest} holds the parsed root.
     */
    public record Loaded(TokenBatch batch, JsonNode windowsRecord, JsonNode manifest) {
        public Loaded(TokenBatch batch, JsonNode windowsRecord) {
            this(batch, windowsRecord, null);
        }

        public boolean isManifest() {
            return manifest != null;
        }
    }

    /** Whether a parsed calibration JSON is an image manifest ({@code {"samples": [...]}}). */
    public static boolean isManifest(JsonNode root) {
        return root != null && root.isObject() && root.has("samples") && root.get("samples").isArray();
    }

    private CalibrationData() {
    }

    public static Loaded load(Path file, int vocabSize, Path modelDir, TextSampling sampling) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("calibration file " + file + " does not exist");
        }
        String name = file.getFileName().toString().toLowerCase();
        List<int[]> sequences;
        JsonNode record = null;
        if (name.endsWith(".safetensors")) {
            sequences = fromSafetensors(file);
        } else if (name.endsWith(".jsonl") || name.endsWith(".txt")) {
            List<String> docs = name.endsWith(".txt") ? List.of(readString(file)) : jsonlTexts(file);
            long[] stream = tokenize(modelDir, String.join("\n\n", docs), file);
            sequences = windows(stream, sampling, file);
            ObjectNode rec = JSON.createObjectNode();
            rec.put("source", file.toString());
            rec.put("samples", sampling.samples());
            rec.put("seq_len", sampling.seqLen());
            rec.put("seed", sampling.seed());
            rec.put("stream_tokens", stream.length);
            rec.set("input_ids", toJson(sequences));
            record = rec;
        } else if (name.endsWith(".json")) {
            JsonNode root = parseJson(file);
            if (isManifest(root)) {
                return new Loaded(null, null, root); // image + prompt samples: the method reads them itself
            }
            sequences = fromJson(file, root);
        } else {
            throw new IllegalArgumentException("calibration file " + file + ": unknown format (expected .json with input_ids, "
                    + ".safetensors with input_ids, .txt or .jsonl)");
        }
        checkVocabulary(file, sequences, vocabSize);
        return new Loaded(new TokenBatch(sequences), record);
    }

    static void checkVocabulary(Path file, List<int[]> sequences, int vocabSize) {
        for (int s = 0; s < sequences.size(); s++) {
            int[] seq = sequences.get(s);
            if (seq.length == 0) {
                throw new IllegalArgumentException(file + ": sequence " + s + " is empty");
            }
            for (int i = 0; i < seq.length; i++) {
                if (seq[i] < 0 || seq[i] >= vocabSize) {
                    throw new IllegalArgumentException(file + ": token id " + seq[i] + " at sequence " + s + ", position " + i
                            + " is outside the model's vocabulary [0, " + vocabSize + ")");
                }
            }
        }
    }

    private static JsonNode parseJson(Path file) {
        try {
            return JSON.readTree(readString(file));
        } catch (JacksonException e) {
            throw new IllegalArgumentException(file + ": invalid JSON: " + e.getOriginalMessage(), e);
        }
    }

    private static List<int[]> fromJson(Path file, JsonNode root) {
        JsonNode ids = root == null ? null : root.get("input_ids");
        if (ids == null || !ids.isArray() || ids.isEmpty()) {
            throw new IllegalArgumentException(file + ": expected {\"input_ids\": [[...], ...]} with at least one sequence");
        }
        List<int[]> out = new ArrayList<>();
        if (ids.get(0).isNumber()) {
            out.add(intArray(file, ids, 0)); // a single flat sequence
            return out;
        }
        for (int s = 0; s < ids.size(); s++) {
            JsonNode seq = ids.get(s);
            if (!seq.isArray()) {
                throw new IllegalArgumentException(file + ": input_ids[" + s + "] is not a list of token ids");
            }
            out.add(intArray(file, seq, s));
        }
        return out;
    }

    private static int[] intArray(Path file, JsonNode seq, int s) {
        int[] out = new int[seq.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = seq.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw new IllegalArgumentException(file + ": input_ids[" + s + "][" + i + "] = " + v + " is not a token id");
            }
            out[i] = v.asInt();
        }
        return out;
    }

    private static List<int[]> fromSafetensors(Path file) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            if (!f.contains("input_ids")) {
                throw new IllegalArgumentException(file + ": no tensor named input_ids (found " + f.entries().keySet() + ")");
            }
            TensorEntry e = f.entry("input_ids");
            if (e.dtype().isFloatingPoint()) {
                throw new IllegalArgumentException(file + ": input_ids has float dtype " + e.dtype() + "; token ids must be integers");
            }
            long[] ids = f.readLongs("input_ids");
            int rank = e.shape().rank();
            if (rank != 1 && rank != 2) {
                throw new IllegalArgumentException(file + ": input_ids must be [N, S] or [S], got " + e.shape());
            }
            int n = rank == 2 ? Math.toIntExact(e.shape().dim(0)) : 1;
            int len = Math.toIntExact(e.shape().dim(-1));
            List<int[]> out = new ArrayList<>();
            for (int s = 0; s < n; s++) {
                int[] seq = new int[len];
                for (int i = 0; i < len; i++) {
                    long v = ids[s * len + i];
                    seq[i] = v > Integer.MAX_VALUE || v < Integer.MIN_VALUE ? -1 : (int) v;
                }
                out.add(seq);
            }
            return out;
        }
    }

    private static List<String> jsonlTexts(Path file) {
        List<String> out = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        }
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty()) {
                continue;
            }
            try {
                JsonNode node = JSON.readTree(line);
                JsonNode text = node == null ? null : node.get("text");
                if (text == null || !text.isString()) {
                    throw new IllegalArgumentException(file + ": line " + (i + 1) + " has no string field \"text\"");
                }
                out.add(text.stringValue());
            } catch (JacksonException e) {
                throw new IllegalArgumentException(file + ": line " + (i + 1) + " is not valid JSON: " + e.getOriginalMessage(), e);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException(file + ": no text lines");
        }
        return out;
    }

    /** Tokenizes with the model's tokenizer.json through the Hugging Face tokenizers library, offline. */
    static long[] tokenize(Path modelDir, String text, Path source) {
        if (modelDir == null) {
            throw new IllegalArgumentException(source + ": text calibration needs a model directory with tokenizer.json");
        }
        Path tokenizerJson = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new IllegalArgumentException(source + ": text calibration needs " + tokenizerJson + " (not found)");
        }
        // never let DJL try to download a GPU build of the native library
        System.setProperty("ai.djl.offline", "true");
        try (HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.builder()
                .optTokenizerPath(tokenizerJson)
                .optTruncation(false)
                .optPadding(false)
                .optAddSpecialTokens(true)
                .build()) {
            Encoding enc = tokenizer.encode(text);
            return enc.getIds();
        } catch (IOException e) {
            throw new UncheckedIOException(tokenizerJson + ": cannot load tokenizer: " + e.getMessage(), e);
        }
    }

    static List<int[]> windows(long[] stream, TextSampling sampling, Path source) {
        int len = sampling.seqLen();
        if (stream.length <= len) {
            throw new IllegalArgumentException(source + ": the text has " + stream.length + " tokens, too few for windows of "
                    + len + " (need more than " + len + ")");
        }
        Random random = new Random(sampling.seed());
        List<int[]> out = new ArrayList<>();
        for (int s = 0; s < sampling.samples(); s++) {
            int start = random.nextInt(stream.length - len);
            int[] w = new int[len];
            for (int i = 0; i < len; i++) {
                w[i] = Math.toIntExact(stream[start + i]);
            }
            out.add(w);
        }
        return out;
    }

    public static ArrayNode toJson(List<int[]> sequences) {
        ArrayNode arr = JSON.createArrayNode();
        for (int[] seq : sequences) {
            ArrayNode a = arr.addArray();
            for (int id : seq) {
                a.add(id);
            }
        }
        return arr;
    }

    private static String readString(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file + " does not exist");
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        }
    }
}
