package io.whittle.app;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.springframework.web.filter.OncePerRequestFilter;

/**
 * Requires {@code Authorization: Bearer <key>} on the paths it is registered for when keys are configured. Keys are
 * kept only as SHA-256 hashes and compared in constant time; a missing or wrong key gets 401 with a problem
 * document and {@code WWW-Authenticate: Bearer}.
 */
public final class ApiKeyFilter extends OncePerRequestFilter {

    private final List<byte[]> keyHashes;

    private ApiKeyFilter(List<byte[]> keyHashes) {
        this.keyHashes = List.copyOf(keyHashes);
    }

    /**
     * The filter for the configured keys: plain keys and a file of hex SHA-256 hashes (blank lines and lines
     * starting with {@code #} are skipped; a {@code sha256:} prefix is allowed).
     */
    public static ApiKeyFilter of(List<String> plainKeys, Path hashesFile) {
        List<byte[]> hashes = new ArrayList<>();
        for (String k : plainKeys) {
            if (k != null && !k.isBlank()) {
                hashes.add(sha256(k.trim()));
            }
        }
        if (hashesFile != null) {
            List<String> lines;
            try {
                lines = Files.readAllLines(hashesFile, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException("whittle.security.api-key-hashes-file: cannot read " + hashesFile + ": "
                        + e.getMessage(), e);
            }
            int n = 0;
            for (String line : lines) {
                n++;
                String h = line.trim();
                if (h.isEmpty() || h.startsWith("#")) {
                    continue;
                }
                if (h.startsWith("sha256:")) {
                    h = h.substring("sha256:".length());
                }
                if (!h.matches("[0-9a-fA-F]{64}")) {
                    throw new IllegalArgumentException("whittle.security.api-key-hashes-file " + hashesFile + " line " + n
                            + ": expected a SHA-256 hash as 64 hex digits");
                }
                hashes.add(HexFormat.of().parseHex(h.toLowerCase()));
            }
        }
        return new ApiKeyFilter(hashes);
    }

    /** Whether any key is configured (without keys the filter lets everything through). */
    public boolean enabled() {
        return !keyHashes.isEmpty();
    }

    @Override
    protected void doFilterInternal(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
            throws ServletException, IOException {
        if (!enabled() || "OPTIONS".equals(request.getMethod())) {
            chain.doFilter(request, response);
            return;
        }
        String header = request.getHeader("Authorization");
        String detail;
        if (header == null || header.isBlank()) {
            detail = "this endpoint needs an API key: send 'Authorization: Bearer <key>'";
        } else if (!header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            detail = "the Authorization header must use the Bearer scheme";
        } else if (!accepted(header.substring(7).trim())) {
            detail = "the API key is not valid";
        } else {
            chain.doFilter(request, response);
            return;
        }
        response.setHeader("WWW-Authenticate", "Bearer realm=\"whittle\"");
        ProblemWriter.write(request, response, 401, "Unauthorized", "UNAUTHORIZED", detail);
    }

    private boolean accepted(String key) {
        byte[] h = sha256(key);
        boolean ok = false;
        for (byte[] k : keyHashes) {
            ok |= MessageDigest.isEqual(h, k); // no early exit: the time does not tell which key came close
        }
        return ok;
    }

    static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
