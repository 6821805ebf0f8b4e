package io.whittle.cli;

import io.whittle.methods.CompressionMethod;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.Methods;
import io.whittle.methods.ParamSpec;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Spec;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "methods", description = "List the methods with their parameters, defaults, ranges and model families (JSON).")
final class MethodsCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        ArrayNode out = Json.MAPPER.createArrayNode();
        for (CompressionMethod m : Methods.all()) {
            out.add(describe(m.descriptor()));
        }
        spec.commandLine().getOut().println(Json.write(out));
        return 0;
    }

    static ObjectNode describe(MethodDescriptor d) {
        ObjectNode n = Json.object();
        n.put("name", d.name());
        n.put("description", d.description());
        ArrayNode fam = n.putArray("families");
        d.families().stream().map(f -> f.modelType()).sorted().forEach(fam::add);
        n.put("requires_calibration", d.requiresCalibration());
        n.put("writes_model", d.writesModel());
        ArrayNode ps = n.putArray("params");
        for (ParamSpec p : d.params()) {
            ObjectNode pn = ps.addObject();
            pn.put("name", p.name());
            pn.put("type", p.type().name().toLowerCase());
            pn.set("default", Json.MAPPER.valueToTree(p.defaultValue()));
            pn.put("required", p.required());
            pn.put("range", p.rangeText());
            if (!p.choices().isEmpty()) {
                ArrayNode c = pn.putArray("choices");
                p.choices().forEach(c::add);
            }
            pn.put("description", p.description());
        }
        return n;
    }
}
