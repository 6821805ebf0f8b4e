package io.whittle.methods.camera;

import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/** Tiny synthetic MoE models, token files and job runs for the CAMERA tests. */
final class CameraFixtures {

    static final JsonMapper JSON = JsonMapper.builder().build();

    private CameraFixtures() {
    }

    /**
     * A 2-layer model of the family: hidden 32, 4 heads (2 KV), 8 experts of width 16, top-2, a shared expert of
     * width 32 where the family has one, vocabulary 64, bf16.
     */
    static SyntheticModels.Request tiny(Family family, long seed) {
        int shared = switch (family) {
            case QWEN2_MOE, DEEPSEEK -> 32;
            default -> 0;
        };
        return new SyntheticModels.Request(family, 2, 32, 48, 8, 2, 16, shared, 4, 2, 64, seed, DType.BF16, 1);
    }

    /** The tiny model of the family under {@code dir}, written on first use. */
    static Path model(Path dir, Family family, long seed) {
        Path m = dir.resolve("model-" + family.modelType());
        if (!java.nio.file.Files.exists(m)) {
            write(tiny(family, seed), m);
        }
        return m;
    }

    static ModelSpec write(SyntheticModels.Request r, Path dir) {
        return SyntheticModels.write(r, dir);
    }

    /** Uniform random token ids, written as {@code {"input_ids": [[...]]}}. */
    static Path randomTokens(Path file, int sequences, int length, int vocab, long seed) {
        Random random = new Random(seed);
        List<int[]> seqs = new ArrayList<>();
        for (int s = 0; s < sequences; s++) {
            int[] seq = new int[length];
            for (int i = 0; i < length; i++) {
                seq[i] = random.nextInt(vocab);
            }
            seqs.add(seq);
        }
        return tokens(file, seqs);
    }

    static Path tokens(Path file, List<int[]> sequences) {
        ObjectNode root = JSON.createObjectNode();
        root.set("input_ids", io.whittle.forward.CalibrationData.toJson(sequences));
        try {
            Files.writeString(file, JSON.writeValueAsString(root));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    /** The exact bytes of a tensor. */
    static byte[] bytes(io.whittle.model.Checkpoint c, String name) {
        io.whittle.model.safetensors.TensorEntry e = c.entry(name);
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(Math.toIntExact(e.byteLength()));
        c.file(name).readBytes(e, 0, buf);
        return buf.array();
    }

    /** Files directly in a directory, sorted, with their bytes. */
    static java.util.SortedMap<String, byte[]> files(Path dir) throws IOException {
        java.util.SortedMap<String, byte[]> out = new java.util.TreeMap<>();
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) {
                out.put(p.getFileName().toString(), Files.readAllBytes(p));
            }
        }
        return out;
    }

    static JobRunner.JobResult run(String method, Path model, Path calibration, Path eval, Map<String, ?> params, Path out)
            throws Exception {
        JobRequest req = new JobRequest(method, model, calibration, eval, params, out, "cpu", null);
        return JobRunner.prepare(req).run(null, null);
    }
}
