package io.whittle.methods;

/** Progress of a running job: the stage, the layer it is on (-1 when none), the layer count and a 0..1 fraction. */
@FunctionalInterface
public interface JobProgress {

    JobProgress NONE = (stage, layer, layers, fraction) -> {
    };

    void update(String stage, int layer, int layers, double fraction);
}
