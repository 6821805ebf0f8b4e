package io.whittle.forward.vision;

import io.whittle.compute.VisualLayout;
import java.util.Arrays;

/**
 * One image + prompt (+ answer) sequence with the image token expanded: rows [0, prefix) are text before the
 * image, then {@code gridRows x gridCols} visual rows (token id = the image token), then the rest of the prompt
 * and the answer. The prompt may hold ONE image token (expanded here, as the LLaVA processor does) or the full
 * run of gridRows x gridCols consecutive image tokens (used as is); anything else is an error.
 *
 * @param tokens       every token id, image rows included
 * @param promptLength rows of the prompt (image included); answer rows follow
 */
public record MultimodalSequence(int[] tokens, int prefix, int gridRows, int gridCols, int promptLength) {

    public int visual() {
        return gridRows * gridCols;
    }

    /** First row after the image. */
    public int textStart() {
        return prefix + visual();
    }

    public int length() {
        return tokens.length;
    }

    /** The layout for a w x w window. */
    public VisualLayout layout(int window) {
        return VisualLayout.ofWindow(prefix, gridRows, gridCols, window);
    }

    /**
     * Expands {@code inputIds} (the prompt) and appends {@code answerIds} (may be null). {@code where} names the
     * sample in error messages.
     */
    public static MultimodalSequence expand(int[] inputIds, int[] answerIds, int imageTokenId, int gridRows, int gridCols,
                                            String where) {
        int visual = gridRows * gridCols;
        int count = 0, first = -1;
        for (int i = 0; i < inputIds.length; i++) {
            if (inputIds[i] == imageTokenId) {
                count++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (count == 0) {
            throw new IllegalArgumentException(where + ": input_ids has no image token (id " + imageTokenId
                    + "); put one where the " + visual + " visual tokens go");
        }
        int[] answer = answerIds == null ? new int[0] : answerIds;
        for (int a : answer) {
            if (a == imageTokenId) {
                throw new IllegalArgumentException(where + ": answer_ids contains the image token (id " + imageTokenId + ")");
            }
        }
        int[] prompt;
        if (count == 1) {
            prompt = new int[inputIds.length - 1 + visual];
            System.arraycopy(inputIds, 0, prompt, 0, first);
            Arrays.fill(prompt, first, first + visual, imageTokenId);
            System.arraycopy(inputIds, first + 1, prompt, first + visual, inputIds.length - first - 1);
        } else if (count == visual && first + visual <= inputIds.length
                && Arrays.stream(inputIds, first, first + visual).allMatch(t -> t == imageTokenId)) {
            prompt = inputIds.clone();
        } else {
            throw new IllegalArgumentException(where + ": input_ids has " + count + " image tokens (id " + imageTokenId
                    + "); expected one image: a single token (expanded to " + visual + ") or " + visual + " consecutive tokens");
        }
        int[] tokens = new int[prompt.length + answer.length];
        System.arraycopy(prompt, 0, tokens, 0, prompt.length);
        System.arraycopy(answer, 0, tokens, prompt.length, answer.length);
        return new MultimodalSequence(tokens, first, gridRows, gridCols, prompt.length);
    }
}
