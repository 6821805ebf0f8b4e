package io.whittle.methods;

/** Whittle's version as the jar manifest states it ("dev" when run from classes). */
public final class Version {

    private Version() {
    }

    public static String get() {
        String v = Version.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }
}
