package io.whittle.forward.vision;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * CLIP's image preprocessing as transformers' {@code CLIPImageProcessor} does it: convert to RGB, resize the
 * shortest side to {@code shortestEdge} with Pillow's bicubic filter (the long side to
 * {@code int(shortestEdge * long / short)}), centre-crop {@code crop x crop} (top-left at
 * ((h - crop) / 2, (w - crop) / 2), floored), rescale by 1/255 and normalise per channel with the CLIP mean and
 * standard deviation. Images are decoded with {@code javax.imageio} (PNG, JPEG; a JPEG decoder may differ from
 * libjpeg by a level or two in some pixels).
 */
public final class ClipImageProcessor {

    public static final double[] CLIP_MEAN = {0.48145466, 0.4578275, 0.40821073};
    public static final double[] CLIP_STD = {0.26862954, 0.26130258, 0.27577711};

    private final int shortestEdge;
    private final int crop;
    private final double rescale;
    private final double[] mean;
    private final double[] std;

    public ClipImageProcessor(int shortestEdge, int crop, double rescale, double[] mean, double[] std) {
        if (shortestEdge < 1 || crop < 1 || crop > shortestEdge || mean.length != 3 || std.length != 3) {
            throw new IllegalArgumentException("invalid CLIP preprocessing: shortest edge " + shortestEdge + ", crop " + crop
                    + ", " + mean.length + " means, " + std.length + " stds");
        }
        this.shortestEdge = shortestEdge;
        this.crop = crop;
        this.rescale = rescale;
        this.mean = mean.clone();
        this.std = std.clone();
    }

    /** The CLIP defaults at {@code imageSize} (336 for LLaVA-1.5). */
    public static ClipImageProcessor clip(int imageSize) {
        return new ClipImageProcessor(imageSize, imageSize, 1.0 / 255, CLIP_MEAN, CLIP_STD);
    }

    /**
     * The model directory's {@code preprocessor_config.json} when present (size.shortest_edge, crop_size,
     * rescale_factor, image_mean, image_std), otherwise the CLIP defaults at the vision config's image size.
     */
    public static ClipImageProcessor forModel(Path modelDir, int imageSize) {
        Path file = modelDir == null ? null : modelDir.resolve("preprocessor_config.json");
        if (file == null || !Files.isRegularFile(file)) {
            return clip(imageSize);
        }
        JsonNode c;
        try {
            c = JsonMapper.builder().build().readTree(Files.readString(file));
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException(file + ": cannot read the image preprocessing config: " + e.getMessage(), e);
        }
        int edge = imageSize;
        JsonNode size = c.get("size");
        if (size != null && size.isObject() && size.has("shortest_edge")) {
            edge = size.get("shortest_edge").asInt();
        } else if (size != null && size.isInt()) {
            edge = size.asInt();
        }
        int cropSize = edge;
        JsonNode cs = c.get("crop_size");
        if (cs != null && cs.isObject() && cs.has("height")) {
            if (cs.get("height").asInt() != cs.path("width").asInt(cs.get("height").asInt())) {
                throw new IllegalArgumentException(file + ": non-square crop_size " + cs + " is not supported");
            }
            cropSize = cs.get("height").asInt();
        } else if (cs != null && cs.isInt()) {
            cropSize = cs.asInt();
        }
        double rescale = c.has("rescale_factor") ? c.get("rescale_factor").asDouble() : 1.0 / 255;
        return new ClipImageProcessor(edge, cropSize, rescale, triple(c, "image_mean", CLIP_MEAN, file),
                triple(c, "image_std", CLIP_STD, file));
    }

    private static double[] triple(JsonNode c, String field, double[] dflt, Path file) {
        JsonNode n = c.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isArray() || n.size() != 3) {
            throw new IllegalArgumentException(file + ": " + field + " must be a list of 3 numbers, got " + n);
        }
        return new double[] {n.get(0).asDouble(), n.get(1).asDouble(), n.get(2).asDouble()};
    }

    public int cropSize() {
        return crop;
    }

    /** An RGB uint8 image, interleaved row-major [height][width][3]. */
    public record RgbImage(int width, int height, int[] pixels) {
    }

    /** Decodes a PNG or JPEG file into RGB (grey replicated, alpha dropped as Pillow's convert("RGB") does). */
    public static RgbImage decode(Path file) {
        BufferedImage img;
        try {
            img = ImageIO.read(file.toFile());
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("image " + file + " cannot be decoded: " + e.getMessage(), e);
        }
        if (img == null) {
            throw new IllegalArgumentException("image " + file + " cannot be decoded: not a PNG or JPEG image (no decoder accepts it)");
        }
        int w = img.getWidth(), h = img.getHeight();
        int[] px = new int[w * h * 3];
        Raster raster = img.getRaster();
        int bands = raster.getNumBands();
        boolean eightBit = raster.getSampleModel().getSampleSize(0) == 8;
        if (!(img.getColorModel() instanceof IndexColorModel) && eightBit && bands <= 4) {
            // read samples directly: getRGB would colour-convert grey images (gamma) and alter the values
            int[] row = new int[w * bands];
            for (int y = 0; y < h; y++) {
                raster.getPixels(0, y, w, 1, row);
                for (int x = 0; x < w; x++) {
                    for (int c = 0; c < 3; c++) {
                        px[(y * w + x) * 3 + c] = row[x * bands + (bands < 3 ? 0 : c)];
                    }
                }
            }
        } else {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int argb = img.getRGB(x, y);
                    px[(y * w + x) * 3] = (argb >> 16) & 0xff;
                    px[(y * w + x) * 3 + 1] = (argb >> 8) & 0xff;
                    px[(y * w + x) * 3 + 2] = argb & 0xff;
                }
            }
        }
        return new RgbImage(w, h, px);
    }

    /** Decodes and preprocesses an image file into pixel values [3, crop, crop]. */
    public FloatTensor preprocess(Path file, HostAllocator alloc) {
        return preprocess(decode(file), alloc);
    }

    /** Preprocesses a decoded image into pixel values [3, crop, crop] (channel-first, as CLIP's conv expects). */
    public FloatTensor preprocess(RgbImage image, HostAllocator alloc) {
        int w = image.width(), h = image.height();
        int shortSide = Math.min(w, h), longSide = Math.max(w, h);
        int newLong = (int) ((double) ((long) shortestEdge * longSide) / shortSide);
        int outW = w <= h ? shortestEdge : newLong;
        int outH = w <= h ? newLong : shortestEdge;
        int[] resized = PillowBicubic.resize(image.pixels(), w, h, 3, outW, outH);
        int top = (outH - crop) / 2, left = (outW - crop) / 2;
        FloatTensor out = alloc.allocate(Shape.of(3, crop, crop), "pixel values");
        float[] plane = new float[crop * crop];
        for (int c = 0; c < 3; c++) {
            float m = (float) mean[c], s = (float) std[c];
            for (int y = 0; y < crop; y++) {
                for (int x = 0; x < crop; x++) {
                    // transformers: rescale in fp64 then cast to fp32; normalise in fp32
                    float v = (float) (resized[((top + y) * outW + left + x) * 3 + c] * rescale);
                    plane[y * crop + x] = (v - m) / s;
                }
            }
            out.copyFrom(plane, 0, (long) c * crop * crop, plane.length);
        }
        return out;
    }
}
