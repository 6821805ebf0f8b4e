package io.whittle.forward.vision;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Image + prompt (+ answer) calibration samples, listed in a JSON manifest:
 * <pre>
 * {"image_token_id": 32000,                       // optional; default: the model's image_token_index
 *  "samples": [
 *    {"image": "images/a.png", "input_ids": [1, 3148, 1001, 29901, 32000, 13, ...], "answer_ids": [450, ...]},
 *    {"features": "feats.safetensors#3", "input_ids": [...]}
 *  ]}
 * </pre>
 * Each sample has exactly one of {@code image} (PNG or JPEG, run through CLIP preprocessing and the vision tower)
 * or {@code features} (a safetensors file holding {@code image_embeds} [N, 576, text hidden], already projected,
 * or {@code image_features} [N, 576, vision hidden], run through the projector; {@code #i} picks item i, default 0).
 * {@code input_ids} is the prompt with ONE image token where the image goes (or the 576 expanded copies);
 * {@code answer_ids} (optional) are appended after the prompt. Paths are relative to the manifest's folder.
 */
public record VisualManifest(Path file, Integer imageTokenId, List<Sample> samples) {

    /** One sample; exactly one of image and features is non-null. */
    public record Sample(int index, Path image, Path features, int featureIndex, int[] inputIds, int[] answerIds) {
        public String where() {
            return "sample " + index;
        }
    }

    public static VisualManifest load(Path file) {
        JsonNode root;
        try {
            root = JsonMapper.builder().build().readTree(Files.readString(file));
        } catch (IOException e) {
            throw new IllegalArgumentException("manifest " + file + " cannot be read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("manifest " + file + " is not valid JSON: " + e.getMessage(), e);
        }
        return parse(file, root);
    }

    public static VisualManifest parse(Path file, JsonNode root) {
        if (root == null || !root.isObject() || !root.has("samples") || !root.get("samples").isArray()) {
            throw new IllegalArgumentException("manifest " + file + ": expected {\"samples\": [...]} at the top level");
        }
        Path base = file.toAbsolutePath().getParent();
        Integer token = null;
        if (root.has("image_token_id") && !root.get("image_token_id").isNull()) {
            JsonNode t = root.get("image_token_id");
            if (!t.isIntegralNumber() || !t.canConvertToInt()) {
                throw new IllegalArgumentException("manifest " + file + ": image_token_id must be an integer, got " + t);
            }
            token = t.intValue();
        }
        List<Sample> samples = new ArrayList<>();
        JsonNode arr = root.get("samples");
        if (arr.isEmpty()) {
            throw new IllegalArgumentException("manifest " + file + ": no samples");
        }
        for (int i = 0; i < arr.size(); i++) {
            JsonNode s = arr.get(i);
            String where = "manifest " + file + ", sample " + i;
            if (!s.isObject()) {
                throw new IllegalArgumentException(where + ": must be an object");
            }
            boolean hasImage = s.has("image") && !s.get("image").isNull();
            boolean hasFeatures = s.has("features") && !s.get("features").isNull();
            if (hasImage == hasFeatures) {
                throw new IllegalArgumentException(where + ": give exactly one of \"image\" (a PNG/JPEG file) and \"features\" "
                        + "(a safetensors file)");
            }
            Path image = null, features = null;
            int featureIndex = 0;
            if (hasImage) {
                image = base.resolve(text(s, "image", where));
            } else {
                String f = text(s, "features", where);
                int hash = f.lastIndexOf('#');
                if (hash >= 0) {
                    try {
                        featureIndex = Integer.parseInt(f.substring(hash + 1));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException(where + ": features '" + f + "': the part after # must be an item index");
                    }
                    if (featureIndex < 0) {
                        throw new IllegalArgumentException(where + ": features '" + f + "': negative item index");
                    }
                    f = f.substring(0, hash);
                }
                features = base.resolve(f);
            }
            int[] ids = ids(s, "input_ids", where, true);
            int[] answer = ids(s, "answer_ids", where, false);
            samples.add(new Sample(i, image, features, featureIndex, ids, answer));
        }
        return new VisualManifest(file, token, samples);
    }

    private static String text(JsonNode s, String field, String where) {
        JsonNode v = s.get(field);
        if (!v.isString() || v.stringValue().isBlank()) {
            throw new IllegalArgumentException(where + ": \"" + field + "\" must be a path string, got " + v);
        }
        return v.stringValue();
    }

    private static int[] ids(JsonNode s, String field, String where, boolean required) {
        JsonNode v = s.get(field);
        if (v == null || v.isNull()) {
            if (required) {
                throw new IllegalArgumentException(where + ": \"" + field + "\" (the prompt's token ids) is required");
            }
            return null;
        }
        if (!v.isArray() || (required && v.isEmpty())) {
            throw new IllegalArgumentException(where + ": \"" + field + "\" must be a non-empty list of token ids");
        }
        int[] out = new int[v.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode e = v.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToInt() || e.intValue() < 0) {
                throw new IllegalArgumentException(where + ": " + field + "[" + i + "] = " + e + " is not a token id");
            }
            out[i] = e.intValue();
        }
        return out;
    }
}
