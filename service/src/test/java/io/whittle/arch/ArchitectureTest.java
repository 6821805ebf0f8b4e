package io.whittle.arch;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.core.importer.Location;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The boundaries DESIGN.md draws: the engine knows nothing of Spring or the service, and JCuda stays in one place. */
class ArchitectureTest {

    static final String[] ENGINE = {"io.whittle.tensor..", "io.whittle.model..", "io.whittle.compute..",
            "io.whittle.forward..", "io.whittle.methods.."};

    static JavaClasses classes;

    @BeforeAll
    static void importClasses() {
        // only our own class directories/jars: scanning the whole classpath for the package is slow
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importLocations(Set.of(location(io.whittle.jobs.JobStore.class), location(io.whittle.kernels.CudaProbe.class)));
    }

    private static Location location(Class<?> c) {
        try {
            return Location.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void theImportSawTheWholeCodeBase() {
        org.assertj.core.api.Assertions.assertThat(classes.containPackage("io.whittle.methods")).isTrue();
        org.assertj.core.api.Assertions.assertThat(classes.containPackage("io.whittle.kernels")).isTrue();
        org.assertj.core.api.Assertions.assertThat(classes.containPackage("io.whittle.api")).isTrue();
    }

    @Test
    void theEngineDoesNotDependOnSpring() {
        noClasses().that().resideInAnyPackage(ENGINE).should().dependOnClassesThat().resideInAPackage("org.springframework..")
                .check(classes);
    }

    @Test
    void theEngineDoesNotDependOnTheService() {
        noClasses().that().resideInAnyPackage(ENGINE).should().dependOnClassesThat()
                .resideInAnyPackage("io.whittle.jobs..", "io.whittle.api..", "io.whittle.app..", "io.whittle.metrics..",
                        "io.whittle.cli..", "io.micrometer..")
                .check(classes);
    }

    @Test
    void onlyTheKernelsPackageUsesJCuda() {
        noClasses().that().resideOutsideOfPackage("io.whittle.kernels..").should().dependOnClassesThat()
                .resideInAPackage("jcuda..").check(classes);
    }

    @Test
    void jobsAndMetricsDoNotDependOnTheWebLayer() {
        noClasses().that().resideInAnyPackage("io.whittle.jobs..", "io.whittle.metrics..").should().dependOnClassesThat()
                .resideInAnyPackage("io.whittle.api..", "io.whittle.app..", "io.whittle.cli..", "org.springframework.web..",
                        "jakarta.servlet..")
                .check(classes);
    }
}
