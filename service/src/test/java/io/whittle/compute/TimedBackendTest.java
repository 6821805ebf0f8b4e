package io.whittle.compute;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The timing wrapper must forward (and time) every backend operation, including ones with default bodies. */
class TimedBackendTest {

    @Test
    void overridesEveryBackendOperation() throws Exception {
        for (Method m : Backend.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            Method impl = TimedBackend.class.getMethod(m.getName(), m.getParameterTypes());
            assertThat(impl.getDeclaringClass()).as("TimedBackend must override %s%s", m.getName(),
                    Arrays.toString(m.getParameterTypes())).isEqualTo(TimedBackend.class);
        }
    }
}
