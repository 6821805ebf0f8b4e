package io.whittle.testing;

import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Tiny synthetic models and token files for the service tests (a few hundred KB; a job on them takes ~0.1 s). */
public final class TestModels {

    private TestModels() {
    }

    /** A 4-expert, top-2 Mixtral-layout model with {@code layers} layers and hidden size 32, in bf16. */
    public static ModelSpec tinyMoe(Path dir, int layers, long seed) {
        return SyntheticModels.write(new SyntheticModels.Request(Family.MIXTRAL, layers, 32, 64, 4, 2, 0, 0, 2, 1, 128, seed,
                DType.BF16, 1), dir);
    }

    /** {@code {"input_ids": [...]}} with {@code sequences} x {@code length} seeded random ids in [1, vocab). */
    public static Path tokens(Path file, int sequences, int length, int vocab, long seed) throws IOException {
        Random random = new Random(seed);
        StringBuilder sb = new StringBuilder("{\"input_ids\": [");
        for (int s = 0; s < sequences; s++) {
            sb.append(s == 0 ? "[" : ", [");
            for (int t = 0; t < length; t++) {
                sb.append(t == 0 ? "" : ", ").append(1 + random.nextInt(vocab - 1));
            }
            sb.append(']');
        }
        sb.append("]}");
        Files.createDirectories(file.getParent());
        return Files.writeString(file, sb.toString());
    }
}
