package io.whittle.forward.vision;

import io.whittle.compute.Backend;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.model.safetensors.TensorEntry;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;

/**
 * The projected image embeddings [tokens, text hidden] of a manifest sample: from an image file (CLIP
 * preprocessing, vision tower, projector), from precomputed vision features (projector only) or from already
 * projected embeddings (as stored). Shapes are checked and every fault names the file.
 */
public final class ImageEmbeddings {

    private ImageEmbeddings() {
    }

    public static FloatTensor of(VisualManifest.Sample sample, ClipVisionTower tower, ClipImageProcessor processor, int textHidden,
                                 Backend b, HostAllocator alloc) {
        if (sample.image() != null) {
            try (FloatTensor pixels = processor.preprocess(sample.image(), alloc);
                 FloatTensor features = tower.features(b, pixels, alloc)) {
                return tower.project(b, features, alloc);
            }
        }
        java.nio.file.Path file = sample.features();
        if (!java.nio.file.Files.isRegularFile(file)) {
            throw new IllegalArgumentException(sample.where() + ": features file " + file + " does not exist");
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String name = f.contains("image_embeds") ? "image_embeds" : f.contains("image_features") ? "image_features" : null;
            if (name == null) {
                throw new IllegalArgumentException(sample.where() + ": " + file + " has neither image_embeds [N, " + tower.tokens() + ", "
                        + textHidden + "] nor image_features [N, " + tower.tokens() + ", " + tower.featureWidth() + "] (found "
                        + f.entries().keySet() + ")");
            }
            int width = name.equals("image_embeds") ? textHidden : tower.featureWidth();
            TensorEntry e = f.entry(name);
            Shape s = e.shape();
            boolean ok = (s.rank() == 3 && s.dim(1) == tower.tokens() && s.dim(2) == width)
                    || (s.rank() == 2 && s.dim(0) == tower.tokens() && s.dim(1) == width);
            if (!ok || !e.dtype().isFloatingPoint()) {
                throw new IllegalArgumentException(sample.where() + ": " + name + " in " + file + " has shape " + s + " and dtype "
                        + e.dtype() + "; expected a float tensor [N, " + tower.tokens() + ", " + width + "]");
            }
            long items = s.rank() == 3 ? s.dim(0) : 1;
            if (sample.featureIndex() >= items) {
                throw new IllegalArgumentException(sample.where() + ": item " + sample.featureIndex() + " of " + name + " in " + file
                        + " does not exist (" + items + " items)");
            }
            long per = (long) tower.tokens() * width;
            FloatTensor x = alloc.allocate(Shape.of(tower.tokens(), width), name);
            try {
                f.readFloats(e, sample.featureIndex() * per, per, x, 0);
                if (name.equals("image_embeds")) {
                    return x;
                }
                try (FloatTensor features = x) {
                    return tower.project(b, features, alloc);
                }
            } catch (RuntimeException ex) {
                x.close();
                throw ex;
            }
        }
    }
}
