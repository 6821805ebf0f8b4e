package io.whittle.forward.vision;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.awt.image.BufferedImage;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Image preprocessing: the bicubic resize byte for byte against Pillow's own output (golden file made by
 * {@code src/test/resources/vision/make_pillow_golden.py} with Pillow 9.4), and the CLIP steps (shortest side,
 * centre crop, rescale, normalise) against a direct computation; decoding errors are clear.
 */
class PillowBicubicTest {

    @TempDir
    Path dir;

    @Test
    void resizeMatchesPillowExactly() throws Exception {
        JsonNode golden;
        try (InputStream in = getClass().getResourceAsStream("/vision/pillow-bicubic-golden.json")) {
            golden = JsonMapper.builder().build().readTree(in);
        }
        assertThat(golden.get("cases").size()).isEqualTo(5);
        for (JsonNode c : golden.get("cases")) {
            int w = c.get("width").asInt(), h = c.get("height").asInt();
            int ow = c.get("out_width").asInt(), oh = c.get("out_height").asInt();
            int[] px = new int[c.get("pixels").size()];
            for (int i = 0; i < px.length; i++) {
                px[i] = c.get("pixels").get(i).asInt();
            }
            int[] expected = new int[c.get("expected").size()];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = c.get("expected").get(i).asInt();
            }
            int[] out = PillowBicubic.resize(px, w, h, 3, ow, oh);
            assertThat(out).as("%dx%d -> %dx%d", w, h, ow, oh).containsExactly(expected);
        }
    }

    @Test
    void clipPreprocessingResizesTheShortSideCropsTheCentreAndNormalises() throws Exception {
        Random random = new Random(3);
        int w = 90, h = 60; // landscape: short side 60 -> 30, long side int(30 * 90 / 60) = 45; crop 30 at left (45-30)/2 = 7
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                img.setRGB(x, y, random.nextInt(1 << 24));
            }
        }
        Path png = dir.resolve("a.png");
        ImageIO.write(img, "png", png.toFile());
        ClipImageProcessor.RgbImage decoded = ClipImageProcessor.decode(png);
        assertThat(decoded.width()).isEqualTo(w);
        assertThat(decoded.pixels()[(5 * w + 7) * 3 + 1]).isEqualTo((img.getRGB(7, 5) >> 8) & 0xff);
        int[] resized = PillowBicubic.resize(decoded.pixels(), w, h, 3, 45, 30);
        ClipImageProcessor proc = ClipImageProcessor.clip(30);
        try (FloatTensor px = proc.preprocess(png, HostAllocator.root())) {
            assertThat(px.shape().dims()).containsExactly(3, 30, 30);
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < 30; y += 7) {
                    for (int x = 0; x < 30; x += 5) {
                        double v = resized[(y * 45 + 7 + x) * 3 + c] / 255.0;
                        double expected = (v - ClipImageProcessor.CLIP_MEAN[c]) / ClipImageProcessor.CLIP_STD[c];
                        assertThat((double) px.get((c * 30 + y) * 30 + x)).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-5));
                    }
                }
            }
        }
    }

    @Test
    void greyImagesAreReplicatedWithoutColourConversion() throws Exception {
        BufferedImage img = new BufferedImage(4, 3, BufferedImage.TYPE_BYTE_GRAY);
        img.getRaster().setSample(2, 1, 0, 77);
        Path png = dir.resolve("g.png");
        ImageIO.write(img, "png", png.toFile());
        ClipImageProcessor.RgbImage decoded = ClipImageProcessor.decode(png);
        int i = (1 * 4 + 2) * 3;
        assertThat(new int[] {decoded.pixels()[i], decoded.pixels()[i + 1], decoded.pixels()[i + 2]}).containsExactly(77, 77, 77);
    }

    @Test
    void undecodableImageIsAClearError() throws Exception {
        Path bad = dir.resolve("broken.png");
        Files.writeString(bad, "this is not an image");
        assertThatThrownBy(() -> ClipImageProcessor.decode(bad)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("image " + bad + " cannot be decoded");
        Path missing = dir.resolve("missing.jpg");
        assertThatThrownBy(() -> ClipImageProcessor.decode(missing)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("cannot be decoded");
    }
}
