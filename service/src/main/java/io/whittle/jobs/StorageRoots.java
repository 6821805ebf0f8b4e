package io.whittle.jobs;

import io.whittle.methods.InvalidParametersException.FieldError;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where jobs may read and write. Models, calibration and evaluation files must resolve, after following every
 * symbolic link, under one of the model roots; outputs must resolve strictly under the output root. A path with a
 * {@code ..} segment is refused outright, and a relative path is taken relative to the first model root (inputs) or
 * the output root (outputs). Anything else is a {@link JobValidationException} with code
 * {@link JobValidationException#PATH_NOT_ALLOWED}, raised before a job exists.
 */
public final class StorageRoots {

    private final List<Path> modelRoots;
    private final Path outputRoot;
    /** The roots as configured (absolute, normalised) and as resolved: a lexical path may start with either. */
    private final List<Path> lexicalRoots = new ArrayList<>();
    private final Path outputRootLexical;

    /**
     * @param modelRoots roots models and data are read from (each must exist)
     * @param outputRoot root outputs are written under (created when missing)
     */
    public StorageRoots(List<Path> modelRoots, Path outputRoot) {
        if (modelRoots == null || modelRoots.isEmpty()) {
            throw new IllegalArgumentException("whittle.storage.model-roots must name at least one directory");
        }
        List<Path> roots = new ArrayList<>();
        for (Path r : modelRoots) {
            if (!Files.isDirectory(r)) {
                throw new IllegalArgumentException("whittle.storage.model-roots: " + r.toAbsolutePath() + " is not a directory");
            }
            roots.add(real(r));
            lexicalRoots.add(r.toAbsolutePath().normalize());
        }
        lexicalRoots.addAll(roots);
        this.modelRoots = List.copyOf(roots);
        try {
            Files.createDirectories(outputRoot);
        } catch (IOException e) {
            throw new UncheckedIOException("whittle.storage.output-root: cannot create " + outputRoot.toAbsolutePath() + ": "
                    + e.getMessage(), e);
        }
        this.outputRoot = real(outputRoot);
        this.outputRootLexical = outputRoot.toAbsolutePath().normalize();
    }

    public List<Path> modelRoots() {
        return modelRoots;
    }

    public Path outputRoot() {
        return outputRoot;
    }

    /**
     * Resolves an input (model directory when {@code directory}, else a regular file) to its real path under a model
     * root.
     */
    public Path resolveInput(String field, String raw, boolean directory) {
        Path p = lexical(field, raw, modelRoots.get(0));
        if (lexicalRoots.stream().noneMatch(p::startsWith)) {
            throw outside(field, raw, "the model roots " + modelRoots);
        }
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS) && !Files.exists(p)) {
            throw JobValidationException.field(field, (directory ? "directory " : "file ") + raw + " does not exist");
        }
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException e) {
            // a dangling symbolic link, or an unreadable path
            throw JobValidationException.field(field, raw + " cannot be resolved: " + e.getMessage());
        }
        if (modelRoots.stream().noneMatch(real::startsWith)) {
            throw outside(field, raw, "the model roots " + modelRoots + " (it resolves to " + real + ")");
        }
        if (directory ? !Files.isDirectory(real) : !Files.isRegularFile(real)) {
            throw JobValidationException.field(field, raw + " is not a " + (directory ? "directory" : "regular file"));
        }
        return real;
    }

    /** Resolves an output directory (which need not exist yet) to a real path strictly under the output root. */
    public Path resolveOutput(String field, String raw) {
        Path p = lexical(field, raw, outputRoot);
        boolean under = (p.startsWith(outputRoot) && !p.equals(outputRoot))
                || (p.startsWith(outputRootLexical) && !p.equals(outputRootLexical));
        if (!under) {
            throw outside(field, raw, "the output root " + outputRoot);
        }
        Path real = realOfDeepestExisting(p);
        if (!real.startsWith(outputRoot) || real.equals(outputRoot)) {
            throw outside(field, raw, "the output root " + outputRoot + " (it resolves to " + real + ")");
        }
        return real;
    }

    /** The output directory of a job that names none. */
    public Path defaultOutput(String jobId) {
        return outputRoot.resolve(jobId);
    }

    /**
     * Re-checks, when a worker is about to run a job, that its stored paths still resolve under the roots (a
     * directory may have been replaced by a symbolic link since the job was accepted).
     */
    public void recheck(Job job) {
        resolveInput("model", job.model(), true);
        if (job.calibration() != null) {
            resolveInput("calibration", job.calibration(), false);
        }
        if (job.eval() != null) {
            resolveInput("eval", job.eval(), false);
        }
        resolveOutput("output", job.output());
    }

    private static Path lexical(String field, String raw, Path base) {
        if (raw == null || raw.isBlank()) {
            throw JobValidationException.field(field, "must not be empty");
        }
        if (raw.indexOf('\0') >= 0) {
            throw new JobValidationException(JobValidationException.PATH_NOT_ALLOWED,
                    List.of(new FieldError(field, "contains a NUL character")));
        }
        for (String segment : raw.split("[/\\\\]")) {
            if (segment.equals("..")) {
                throw new JobValidationException(JobValidationException.PATH_NOT_ALLOWED,
                        List.of(new FieldError(field, "'" + raw + "' must not contain '..' segments")));
            }
        }
        try {
            Path p = Path.of(raw);
            return (p.isAbsolute() ? p : base.resolve(p)).normalize();
        } catch (InvalidPathException e) {
            throw JobValidationException.field(field, "'" + raw + "' is not a valid path: " + e.getMessage());
        }
    }

    /** The real path of the deepest existing ancestor (or the path itself), with the rest appended. */
    private static Path realOfDeepestExisting(Path p) {
        Path existing = p;
        while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return p;
        }
        try {
            Path real = existing.toRealPath();
            return real.resolve(existing.relativize(p)).normalize();
        } catch (IOException e) {
            // a dangling symbolic link: whatever it would point to later is not trusted
            throw new JobValidationException(JobValidationException.PATH_NOT_ALLOWED,
                    List.of(new FieldError("output", existing + " cannot be resolved: " + e.getMessage())));
        }
    }

    private static JobValidationException outside(String field, String raw, String where) {
        return new JobValidationException(JobValidationException.PATH_NOT_ALLOWED,
                List.of(new FieldError(field, "'" + raw + "' is outside " + where)));
    }

    private static Path real(Path p) {
        try {
            return p.toRealPath();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot resolve " + p.toAbsolutePath() + ": " + e.getMessage(), e);
        }
    }
}
