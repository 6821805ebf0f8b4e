package io.whittle.app;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.EnvironmentPostProcessor;
import org.springframework.boot.SpringApplication;
import org.springframework.core.Ordered;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * Gives the service its no-set-up default: when no {@code spring.datasource.url} is configured, an H2 file database
 * under {@code whittle.storage.data-dir} (made absolute, which H2 requires). Added last, so any configured value wins.
 */
public class WhittleEnvironment implements EnvironmentPostProcessor, Ordered {

    static final String SOURCE = "whittleDefaults";

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment env, SpringApplication application) {
        if (env.containsProperty("spring.datasource.url")) {
            return;
        }
        Path dataDir = Path.of(env.getProperty("whittle.storage.data-dir", "whittle-data")).toAbsolutePath().normalize();
        Map<String, Object> defaults = new LinkedHashMap<>();
        // LOCK_TIMEOUT: a claim and a cancel can wait on the same row for a moment; H2's default (1 s) is tight
        defaults.put("spring.datasource.url", "jdbc:h2:file:" + dataDir.resolve("db").resolve("whittle") + ";LOCK_TIMEOUT=10000");
        defaults.put("spring.datasource.username", "sa");
        env.getPropertySources().addLast(new MapPropertySource(SOURCE, defaults));
    }

    @Override
    public int getOrder() {
        return Ordered.LOWEST_PRECEDENCE;
    }
}
