package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Keeps {@link WgsefBench} working on tiny sizes; no timing assertions (the real sizes are run by hand). */
class WgsefBenchTest {

    @Test
    void benchRunsOnTinySizes() {
        List<WgsefBench.Measurement> m = WgsefBench.run(new String[] {"--prox", "2e4", "--fista", "32x48", "--reps", "1"});
        assertEquals(3, m.size());
        for (WgsefBench.Measurement x : m) {
            assertTrue(x.ceiling() > 0 && Double.isFinite(x.ceiling()), x.toString());
            assertTrue(x.seconds() > 0 && x.rate() > 0 && Double.isFinite(x.rate()), x.toString());
        }
    }
}
