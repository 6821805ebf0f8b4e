package io.whittle.jobs;

import io.whittle.testing.TestDatabases;
import java.nio.file.Path;

/** The queue contract on the embedded default, H2 (a file database other processes can open). */
class JobQueueH2Test extends JobQueueContract {

    @Override
    TestDatabases.Database database(Path dir) {
        return TestDatabases.h2(dir, true);
    }
}
