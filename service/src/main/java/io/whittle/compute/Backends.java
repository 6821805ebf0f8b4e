package io.whittle.compute;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

/** Selects a backend by name ({@code cpu}, {@code cuda}) or {@code auto} (the usable provider of lowest rank). */
public final class Backends {

    private Backends() {
    }

    public static List<BackendProvider> providers() {
        List<BackendProvider> out = new ArrayList<>();
        ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader()).forEach(out::add);
        out.sort(Comparator.comparingInt(BackendProvider::rank));
        return out;
    }

    /** Every device the providers see, usable or not (with the reason). */
    public static List<DeviceInfo> devices() {
        return providers().stream().map(BackendProvider::probe).toList();
    }

    /**
     * Creates the backend asked for. {@code auto} takes the best usable one; naming one that is unusable or
     * unknown fails with the reason, so a job never silently runs somewhere the user did not ask for.
     */
    public static Backend create(String requested) {
        return create(requested, io.whittle.tensor.HostAllocator.root());
    }

    /**
     * As {@link #create(String)}, with the host allocator the backend draws from; wrapped to report operation
     * timings when a {@link KernelTimings} listener is installed.
     */
    public static Backend create(String requested, io.whittle.tensor.HostAllocator hostAllocator) {
        Backend b = createUntimed(requested, hostAllocator);
        KernelTimings.Listener listener = KernelTimings.current();
        return listener == KernelTimings.NONE ? b : new TimedBackend(b, listener);
    }

    private static Backend createUntimed(String requested, io.whittle.tensor.HostAllocator hostAllocator) {
        String want = requested == null ? "auto" : requested.trim().toLowerCase();
        List<BackendProvider> providers = providers();
        if (want.equals("auto")) {
            for (BackendProvider p : providers) {
                if (p.probe().usable()) {
                    return p.create(hostAllocator);
                }
            }
            throw new IllegalStateException("no usable compute backend: " + describe(providers));
        }
        for (BackendProvider p : providers) {
            if (p.name().equals(want)) {
                DeviceInfo info = p.probe();
                if (!info.usable()) {
                    throw new IllegalStateException("backend '" + want + "' is not usable on this machine: " + info.reason());
                }
                return p.create(hostAllocator);
            }
        }
        if (want.equals("cuda")) {
            throw new IllegalStateException("backend 'cuda' is not available in this build of Whittle; available: "
                    + describe(providers));
        }
        throw new IllegalArgumentException("unknown backend '" + requested + "'; expected auto, cpu or cuda");
    }

    private static String describe(List<BackendProvider> providers) {
        return providers.stream().map(p -> {
            DeviceInfo d = p.probe();
            return p.name() + (d.usable() ? " (usable)" : " (unusable: " + d.reason() + ")");
        }).collect(Collectors.joining(", "));
    }
}
