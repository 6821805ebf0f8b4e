package io.whittle.methods;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;

/** The registered methods (ServiceLoader), in name order. */
public final class Methods {

    private static volatile List<CompressionMethod> cached;

    private Methods() {
    }

    public static List<CompressionMethod> all() {
        List<CompressionMethod> m = cached;
        if (m == null) {
            List<CompressionMethod> found = new ArrayList<>();
            ServiceLoader.load(CompressionMethod.class, Methods.class.getClassLoader()).forEach(found::add);
            found.sort(Comparator.comparing(x -> x.descriptor().name()));
            m = List.copyOf(found);
            cached = m;
        }
        return m;
    }

    public static CompressionMethod get(String name) {
        for (CompressionMethod m : all()) {
            if (m.descriptor().name().equals(name)) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown method '" + name + "'; available: "
                + all().stream().map(x -> x.descriptor().name()).toList());
    }
}
