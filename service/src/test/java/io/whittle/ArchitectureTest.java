package io.whittle;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/**
 * Boundaries the design depends on: the engine (tensors, model I/O, compute, forward, methods) knows nothing of
 * Spring, so it runs the same in the CLI, the service and a bare GPU box; and JCuda types appear only in the
 * kernels glue, so a missing libcuda can never break a CPU code path.
 */
class ArchitectureTest {

    private static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("io.whittle");

    @Test
    void engineDoesNotDependOnSpring() {
        noClasses().that().resideInAnyPackage("io.whittle.tensor..", "io.whittle.model..", "io.whittle.compute..",
                        "io.whittle.forward..", "io.whittle.methods..")
                .should().dependOnClassesThat().resideInAnyPackage("org.springframework..")
                .because("the engine must run without Spring (CLI, GPU check script)")
                .check(CLASSES);
    }

    @Test
    void jcudaStaysInTheKernelsGlue() {
        noClasses().that().resideOutsideOfPackage("io.whittle.kernels..")
                .should().dependOnClassesThat().resideInAnyPackage("jcuda..")
                .because("native CUDA bindings are isolated in one package")
                .check(CLASSES);
    }
}
