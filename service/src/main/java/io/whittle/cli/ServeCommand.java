package io.whittle.cli;

import io.whittle.app.WhittleApplication;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.event.ContextClosedEvent;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Unmatched;

@Command(name = "serve", description = {
        "Start the service: REST API on /api/v1, workers, metrics on /actuator/prometheus, OpenAPI on /v3/api-docs.",
        "Any Spring property can follow as --name=value (e.g. --spring.datasource.url=jdbc:postgresql://db/whittle).",
        "Runs until stopped (SIGTERM: workers finish or release their jobs within whittle.worker.shutdown-grace)."})
final class ServeCommand implements Callable<Integer> {

    @Option(names = "--role", description = "api | worker | all (default: whittle.role, else all).")
    String role;
    @Option(names = "--port", description = "HTTP port (default: server.port, else 8080).")
    Integer port;
    @Option(names = "--data-dir", description = "Embedded database, models and outputs (default: whittle.storage.data-dir, else ./whittle-data).")
    Path dataDir;
    @Unmatched
    List<String> springArgs = new ArrayList<>();

    @Override
    public Integer call() throws InterruptedException {
        List<String> args = new ArrayList<>();
        if (role != null) {
            args.add("--whittle.role=" + role);
        }
        if (port != null) {
            args.add("--server.port=" + port);
        }
        if (dataDir != null) {
            args.add("--whittle.storage.data-dir=" + dataDir.toAbsolutePath());
        }
        for (String a : springArgs) {
            if (!a.startsWith("--") || a.indexOf('=') < 3) {
                throw new IllegalArgumentException("unexpected argument '" + a + "'; Spring properties go as --name=value");
            }
            args.add(a);
        }
        ConfigurableApplicationContext context = WhittleApplication.start(Map.of(), args.toArray(String[]::new));
        CountDownLatch closed = new CountDownLatch(1);
        context.addApplicationListener(event -> {
            if (event instanceof ContextClosedEvent) {
                closed.countDown();
            }
        });
        if (context.isActive()) {
            closed.await(); // the shutdown hook closes the context on SIGTERM
        }
        return 0;
    }
}
