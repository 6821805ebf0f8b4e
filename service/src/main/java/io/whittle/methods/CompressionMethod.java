package io.whittle.methods;

/**
 * A compression (or analysis) method: its descriptor, checks that need the model, and the run itself. Methods
 * are found through {@link java.util.ServiceLoader} ({@link Methods}); the {@link JobRunner} validates the request,
 * loads model and data, and hands a {@link JobContext} to {@link #run}. A method writes its outputs through the
 * context (the checkpoint writer and the report) and never publishes anything itself: the runner does that
 * atomically when the run succeeds.
 */
public interface CompressionMethod {

    MethodDescriptor descriptor();

    /**
     * Checks that need the model or several parameters together (e.g. a dense model for an MoE method, fractions
     * that do not sum to 1); throws {@link IllegalArgumentException} (or {@link InvalidParametersException}) before
     * any work starts.
     */
    default void check(MethodParams params, io.whittle.model.ModelSpec spec) {
    }

    /** Does the work. Called once per job with everything loaded and validated. */
    void run(JobContext context) throws Exception;
}
