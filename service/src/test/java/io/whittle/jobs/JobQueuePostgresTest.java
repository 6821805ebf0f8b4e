package io.whittle.jobs;

import io.whittle.testing.TestDatabases;
import java.nio.file.Path;

/**
 * The queue contract on PostgreSQL: {@code WHITTLE_TEST_JDBC_URL}, else Testcontainers, else skipped with the reason
 * ({@code .ci/run} provides a local server so CI never skips it).
 */
class JobQueuePostgresTest extends JobQueueContract {

    @Override
    TestDatabases.Database database(Path dir) {
        return TestDatabases.postgres();
    }
}
