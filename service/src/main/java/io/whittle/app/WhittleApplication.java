package io.whittle.app;

import java.util.Map;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The Whittle service: REST API ({@code io.whittle.api}), job store and workers ({@code io.whittle.jobs}), metrics
 * ({@code io.whittle.metrics}), wired here. Started by {@code whittle serve} (and {@code whittle demo}); the engine
 * packages know nothing of it.
 */
@SpringBootApplication(scanBasePackages = {"io.whittle.app", "io.whittle.api"})
public class WhittleApplication {

    /**
     * Starts the service. {@code defaults} are default properties (any other property source overrides them);
     * {@code args} are Spring command-line arguments ({@code --name=value}).
     */
    public static ConfigurableApplicationContext start(Map<String, Object> defaults, String... args) {
        SpringApplication app = new SpringApplication(WhittleApplication.class);
        app.setDefaultProperties(defaults);
        return app.run(args);
    }
}
