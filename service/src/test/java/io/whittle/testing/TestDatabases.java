package io.whittle.testing;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Locale;
import java.util.UUID;
import org.flywaydb.core.Flyway;
import org.junit.jupiter.api.Assumptions;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.postgresql.PostgreSQLContainer;

/**
 * Databases for the queue tests. H2: a file database in a test directory. PostgreSQL: the server named by
 * {@code WHITTLE_TEST_JDBC_URL} (user {@code WHITTLE_TEST_JDBC_USER}, default postgres; password
 * {@code WHITTLE_TEST_JDBC_PASSWORD}), else a Testcontainers container when Docker is present, else the test is
 * skipped with the reason. Each PostgreSQL user gets its own schema, dropped on close, so concurrent builds on one
 * server do not see each other's jobs.
 */
public final class TestDatabases {

    private static PostgreSQLContainer container;

    private TestDatabases() {
    }

    /** Where a test's database is: JDBC URL and credentials (for child processes too). */
    public record Database(String url, String user, String password, Runnable cleanup) implements AutoCloseable {
        public HikariDataSource dataSource(int poolSize) {
            HikariConfig c = new HikariConfig();
            c.setJdbcUrl(url);
            c.setUsername(user);
            c.setPassword(password);
            c.setMaximumPoolSize(poolSize);
            c.setPoolName("test-" + UUID.randomUUID().toString().substring(0, 6));
            return new HikariDataSource(c);
        }

        /** Applies the service's Flyway migrations. */
        public void migrate() {
            try (HikariDataSource ds = dataSource(2)) {
                Flyway.configure().dataSource(ds).locations("classpath:db/migration").load().migrate();
            }
        }

        @Override
        public void close() {
            cleanup.run();
        }
    }

    /** An H2 file database under {@code dir}; {@code autoServer} lets other processes open it too. */
    public static Database h2(Path dir, boolean autoServer) {
        String url = "jdbc:h2:file:" + dir.toAbsolutePath().resolve("db/whittle") + ";LOCK_TIMEOUT=10000"
                + (autoServer ? ";AUTO_SERVER=TRUE" : "");
        return new Database(url, "sa", "", () -> {
        });
    }

    /** A fresh schema on the test PostgreSQL, or a skipped test saying why there is none. */
    public static Database postgres() {
        String base = System.getenv("WHITTLE_TEST_JDBC_URL");
        String user = System.getenv().getOrDefault("WHITTLE_TEST_JDBC_USER", "postgres");
        String password = System.getenv().getOrDefault("WHITTLE_TEST_JDBC_PASSWORD", "");
        if (base == null || base.isBlank()) {
            boolean docker;
            try {
                docker = DockerClientFactory.instance().isDockerAvailable();
            } catch (RuntimeException e) {
                docker = false;
            }
            Assumptions.assumeTrue(docker, "PostgreSQL tests skipped: WHITTLE_TEST_JDBC_URL is not set and Docker is not "
                    + "available (.ci/run provides a local PostgreSQL)");
            synchronized (TestDatabases.class) {
                if (container == null) {
                    container = new PostgreSQLContainer("postgres:17-alpine");
                    container.start();
                }
            }
            base = container.getJdbcUrl();
            user = container.getUsername();
            password = container.getPassword();
        }
        String schema = "whittle_test_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12).toLowerCase(Locale.ROOT);
        execute(base, user, password, "CREATE SCHEMA " + schema);
        String url = base + (base.contains("?") ? "&" : "?") + "currentSchema=" + schema;
        String b = base;
        String u = user;
        String p = password;
        return new Database(url, user, password, () -> execute(b, u, p, "DROP SCHEMA IF EXISTS " + schema + " CASCADE"));
    }

    private static void execute(String url, String user, String password, String sql) {
        try (Connection c = DriverManager.getConnection(url, user, password); Statement s = c.createStatement()) {
            s.execute(sql);
        } catch (SQLException e) {
            throw new IllegalStateException("PostgreSQL at " + url + ": " + sql + " failed: " + e.getMessage(), e);
        }
    }
}
