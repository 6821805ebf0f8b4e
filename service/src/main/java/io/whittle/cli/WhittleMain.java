package io.whittle.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * The {@code whittle} command line. Every subcommand prints its result (JSON where it is data) on stdout; errors
 * print one line on stderr and exit non-zero, with the stack trace only under {@code --verbose}.
 */
@Command(name = "whittle", mixinStandardHelpOptions = true, versionProvider = WhittleVersion.class,
        description = "Hardware-aware compression of Hugging Face checkpoints (CAMERA, WGSEF, visual-token pruning).",
        subcommands = {SynthCommand.class, InspectCommand.class, EvalCommand.class, RunCommand.class, MethodsCommand.class,
                SampleCommand.class, BenchCommand.class, VisualFlopsCommand.class, VisualBenchCommand.class,
                ServeCommand.class, WorkerCommand.class, DemoCommand.class,
                CommandLine.HelpCommand.class})
public final class WhittleMain implements Runnable {

    @Option(names = "--verbose", scope = ScopeType.INHERIT, description = "Print stack traces of errors.")
    boolean verbose;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the CLI and returns the exit code (tests call this instead of {@link #main}). */
    public static int execute(String... args) {
        return commandLine().execute(args);
    }

    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new WhittleMain());
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            boolean verbose = parseResult.matchedOptionValue("--verbose", false)
                    || parseResult.subcommands().stream().anyMatch(p -> p.matchedOptionValue("--verbose", false));
            PrintWriter err = commandLine.getErr();
            if (verbose) {
                ex.printStackTrace(err);
            } else {
                err.println("error: " + message(ex));
            }
            err.flush();
            return ex instanceof IllegalArgumentException ? 2 : 1;
        });
        return cl;
    }

    static String message(Throwable ex) {
        String m = ex.getMessage();
        if (m == null || m.isBlank()) {
            m = ex.getClass().getSimpleName();
        }
        if (ex instanceof OutOfMemoryError) {
            m = "out of memory: " + m + " (raise -Xmx, or use fewer/shorter calibration sequences)";
        }
        return m;
    }
}
