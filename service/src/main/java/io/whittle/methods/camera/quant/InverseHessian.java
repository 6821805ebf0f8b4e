package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;

/**
 * What GPTQ needs from a Hessian, computed once and reusable for every matrix that reads the same inputs (W_gate
 * and W_up of an expert): the upper Cholesky factor U of (H + damping)^-1 (so (H + damping)^-1 = U^T U), the
 * dead input columns (diag(H) == 0), and the damping actually applied. When GPTQ cannot run (no calibration rows,
 * an all-zero Hessian, a Hessian that stays indefinite after damping escalation) {@link #fallbackReason()} says
 * why and quantization falls back to RTN. Off-heap memory (4 * dim^2 bytes) is released by {@link #close()}.
 */
public final class InverseHessian implements AutoCloseable {

    private final int dim;
    private final FloatTensor upper; // null on fallback
    private final boolean[] dead;
    private final double dampFraction;
    private final double dampAbsolute;
    private final String fallbackReason;

    InverseHessian(int dim, FloatTensor upper, boolean[] dead, double dampFraction, double dampAbsolute, String fallbackReason) {
        this.dim = dim;
        this.upper = upper;
        this.dead = dead;
        this.dampFraction = dampFraction;
        this.dampAbsolute = dampAbsolute;
        this.fallbackReason = fallbackReason;
    }

    static InverseHessian fallback(int dim, String reason) {
        return new InverseHessian(dim, null, new boolean[dim], 0, 0, reason);
    }

    public int dim() {
        return dim;
    }

    /** Why GPTQ falls back to RTN for this Hessian, or null when GPTQ runs. */
    public String fallbackReason() {
        return fallbackReason;
    }

    public boolean isFallback() {
        return fallbackReason != null;
    }

    /** Columns whose Hessian diagonal is exactly zero (their input never varied from 0). */
    public int deadColumnCount() {
        int n = 0;
        for (boolean d : dead) {
            n += d ? 1 : 0;
        }
        return n;
    }

    boolean isDead(int column) {
        return dead[column];
    }

    /** The damping fraction of mean(diag H) actually added (the requested one unless it had to be raised). */
    public double dampFraction() {
        return dampFraction;
    }

    /** The absolute value added to the diagonal. */
    public double dampAbsolute() {
        return dampAbsolute;
    }

    FloatTensor upper() {
        if (upper == null) {
            throw new IllegalStateException("no inverse Hessian factor: " + fallbackReason);
        }
        return upper;
    }

    @Override
    public void close() {
        if (upper != null) {
            upper.close();
        }
    }
}
