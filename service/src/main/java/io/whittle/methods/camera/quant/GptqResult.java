package io.whittle.methods.camera.quant;

/**
 * The outcome of quantizing one matrix with GPTQ.
 *
 * @param matrix         the quantized matrix
 * @param fallbackReason why RTN was used instead of GPTQ (no calibration rows, ...), or null when GPTQ ran
 * @param proxyLoss      GPTQ's own loss estimate {@code sum (w - q)^2 / d^2 / 2} over all weights (d the diagonal of
 *                       the inverse-Hessian factor); 0 on fallback
 * @param deadColumns    input columns with a zero Hessian diagonal; as in the reference their weights are set to 0
 * @param dampFraction   the damping fraction of mean(diag H) applied (0 on fallback)
 */
public record GptqResult(QuantizedMatrix matrix, String fallbackReason, double proxyLoss, int deadColumns, double dampFraction) {

    public boolean usedFallback() {
        return fallbackReason != null;
    }
}
