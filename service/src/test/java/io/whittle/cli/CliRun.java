package io.whittle.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** One in-process run of the {@code whittle} command line, with what it printed. */
record CliRun(int code, String out, String err) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    static CliRun of(String... args) {
        CommandLine cl = WhittleMain.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new CliRun(code, out.toString(), err.toString());
    }

    JsonNode json() {
        return JSON.readTree(out);
    }
}
