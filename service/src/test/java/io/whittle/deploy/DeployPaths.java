package io.whittle.deploy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/** Where the deployment files are: the repository root is the parent of the service module (the tests' directory). */
final class DeployPaths {

    private DeployPaths() {
    }

    static Path repoRoot() {
        Path dir = Path.of("").toAbsolutePath();
        for (Path p = dir; p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("helm/whittle")) && Files.isDirectory(p.resolve("docker"))) {
                return p;
            }
        }
        throw new IllegalStateException("no repository root with helm/whittle and docker/ above " + dir);
    }

    static Path chart() {
        return repoRoot().resolve("helm/whittle");
    }

    /** The dashboard JSON files in a directory, sorted. */
    static List<Path> dashboardFiles(Path dir) {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> out = files.filter(f -> f.getFileName().toString().endsWith(".json")).sorted().toList();
            if (out.isEmpty()) {
                throw new IllegalStateException("no dashboards in " + dir);
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
