package io.whittle.app;

import java.nio.file.Path;
import org.springframework.boot.EnvironmentPostProcessor;
import org.springframework.boot.SpringApplication;
import org.springframework.core.Ordered;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.PropertySource;

/**
 * Gives the service its no-set-up default: when no {@code spring.datasource.url} is configured, an H2 file database
 * under {@code whittle.storage.data-dir} (made absolute, which H2 requires); and reads {@code whittle.executor} as
 * {@code whittle.executor.mode} unless that is set itself. The default is a property source of
 * lowest precedence that computes the URL when it is read, so it follows a data directory set by any other
 * source, including ones added after start-up began (tests' dynamic properties).
 */
public class WhittleEnvironment implements EnvironmentPostProcessor, Ordered {

    static final String SOURCE = "whittleDefaults";

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment env, SpringApplication application) {
        if (!env.getPropertySources().contains(SOURCE)) {
            env.getPropertySources().addLast(new Defaults(env));
        }
    }

    @Override
    public int getOrder() {
        return Ordered.LOWEST_PRECEDENCE;
    }

    /**
     * {@code spring.datasource.url} and {@code username} for the embedded H2 database, and {@code whittle.executor.mode}
     * from its short form {@code whittle.executor}.
     */
    static final class Defaults extends PropertySource<Object> {

        /** Read at lookup time; deliberately not the property source's "source", which tools may walk. */
        private final ConfigurableEnvironment env;

        Defaults(ConfigurableEnvironment env) {
            super(SOURCE, new Object());
            this.env = env;
        }

        @Override
        public Object getProperty(String name) {
            return switch (name) {
                case "spring.datasource.url" -> {
                    Path dataDir = Path.of(env.getProperty("whittle.storage.data-dir", "whittle-data"))
                            .toAbsolutePath().normalize();
                    // LOCK_TIMEOUT: a claim and a cancel can wait on the same row for a moment; H2's 1 s default is tight
                    yield "jdbc:h2:file:" + dataDir.resolve("db").resolve("whittle") + ";LOCK_TIMEOUT=10000";
                }
                case "spring.datasource.username" -> env.getProperty("spring.datasource.url", "").startsWith("jdbc:h2:")
                        ? "sa" : null;
                // whittle.executor=kubernetes (WHITTLE_EXECUTOR) is the short form of whittle.executor.mode
                case "whittle.executor.mode" -> env.getProperty("whittle.executor");
                default -> null;
            };
        }
    }
}
