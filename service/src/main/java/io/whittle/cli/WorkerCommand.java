package io.whittle.cli;

import io.whittle.app.WhittleApplication;
import io.whittle.jobs.SingleJobWorker;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.springframework.context.ConfigurableApplicationContext;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Unmatched;

@Command(name = "worker", description = {
        "Run one job of the queue and exit: the command of a Kubernetes Job's pod (whittle.executor=kubernetes).",
        "Claims job <id> and no other, with the same lease and heartbeats as any worker; progress and the result go",
        "to the job table. Configure the database and storage as for 'serve' (--name=value or environment).",
        "Exit codes: 0 the job succeeded; 1 nothing final happened (held by another worker, lease lost, stopped by",
        "SIGTERM and given back): another attempt may run it; 3 the job failed, was cancelled or does not exist."})
final class WorkerCommand implements Callable<Integer> {

    /** Properties that make this process a single-job worker; the command sets them. */
    private static final java.util.Set<String> RESERVED = java.util.Set.of("whittle.worker.job", "whittle.role",
            "spring.main.web-application-type");

    @Option(names = "--job", required = true, paramLabel = "<id>", description = "The job to run.")
    String jobId;
    @Option(names = "--data-dir", description = "Embedded database, models and outputs (default: whittle.storage.data-dir, else ./whittle-data).")
    Path dataDir;
    @Option(names = "--termination-log", paramLabel = "<file>", defaultValue = "/dev/termination-log",
            description = "Where the one-line outcome is also written when the file exists (Kubernetes shows it as the "
                    + "container's termination message; default: ${DEFAULT-VALUE}).")
    Path terminationLog;
    @Unmatched
    List<String> springArgs = new ArrayList<>();
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (jobId.isBlank()) {
            throw new IllegalArgumentException("--job needs a job id");
        }
        List<String> args = new ArrayList<>();
        for (String a : springArgs) {
            if (!a.startsWith("--") || a.indexOf('=') < 3) {
                throw new IllegalArgumentException("unexpected argument '" + a + "'; Spring properties go as --name=value");
            }
            String name = a.substring(2, a.indexOf('='));
            if (RESERVED.contains(name)) {
                throw new IllegalArgumentException("'" + a + "': the worker command sets " + name + " itself");
            }
            args.add(a);
        }
        // after the user's arguments: these define what this process is
        args.add("--whittle.worker.job=" + jobId);
        args.add("--whittle.role=worker");
        args.add("--spring.main.web-application-type=none");
        if (dataDir != null) {
            args.add("--whittle.storage.data-dir=" + dataDir.toAbsolutePath());
        }
        SingleJobWorker.Result result;
        try (ConfigurableApplicationContext context = WhittleApplication.start(Map.of(), args.toArray(String[]::new))) {
            result = context.getBean(SingleJobWorker.class).run(jobId);
        }
        if (result.exitCode() == SingleJobWorker.EXIT_SUCCEEDED) {
            spec.commandLine().getOut().println(result.message());
            spec.commandLine().getOut().flush();
        } else {
            spec.commandLine().getErr().println("error: " + result.message());
            spec.commandLine().getErr().flush();
        }
        writeTerminationMessage(result.message());
        return result.exitCode();
    }

    private void writeTerminationMessage(String message) {
        if (terminationLog == null || !Files.isRegularFile(terminationLog) || !Files.isWritable(terminationLog)) {
            return;
        }
        try {
            Files.writeString(terminationLog, message.length() > 3500 ? message.substring(0, 3500) + "..." : message,
                    StandardCharsets.UTF_8);
        } catch (IOException e) {
            spec.commandLine().getErr().println("warning: could not write " + terminationLog + ": " + e.getMessage());
        }
    }
}
