package io.whittle.cli;

import picocli.CommandLine.IVersionProvider;

/** The version from the jar manifest (Implementation-Version), or "dev" when run from classes. */
public final class WhittleVersion implements IVersionProvider {

    public static String version() {
        String v = WhittleVersion.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }

    @Override
    public String[] getVersion() {
        return new String[] {"whittle " + version()};
    }
}
