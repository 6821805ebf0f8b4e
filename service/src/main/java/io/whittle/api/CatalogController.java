package io.whittle.api;

import com.fasterxml.jackson.annotation.JsonProperty;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import io.whittle.compute.Backends;
import io.whittle.compute.DeviceInfo;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.Methods;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec;
import java.util.List;
import org.springframework.boot.autoconfigure.condition.ConditionalOnExpression;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;

/** {@code /api/v1/methods} and {@code /api/v1/devices}: what this service can run, and on what. */
@RestController
@RequestMapping("/api/v1")
@Tag(name = "catalog")
@ConditionalOnExpression("'${whittle.role:all}'.trim().toLowerCase() != 'worker'")
public class CatalogController {

    /** A method and everything {@code POST /api/v1/jobs} validates against (the same descriptor). */
    public record MethodView(String name, String description, List<String> families, boolean requiresCalibration,
                             boolean writesModel, List<ParamView> params) {
    }

    /**
     * One parameter: type ({@code integer, number, boolean, string, choice, number_list, integer_list}), default,
     * whether required, bounds (with exclusivity), choices, the range in words and a description.
     */
    public record ParamView(String name, String type, @JsonProperty("default") Object defaultValue, boolean required, Double min,
                            boolean minExclusive, Double max, boolean maxExclusive, List<String> choices, String range,
                            String description) {
    }

    @GetMapping(value = "/methods", produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "The methods with their parameters, defaults, ranges and model families")
    public List<MethodView> methods() {
        return Methods.all().stream().map(CompressionMethod::descriptor).map(CatalogController::view).toList();
    }

    static MethodView view(MethodDescriptor d) {
        List<ParamView> params = d.params().stream().map(CatalogController::view).toList();
        return new MethodView(d.name(), d.description(),
                d.families().stream().map(ModelSpec.Family::modelType).sorted().toList(), d.requiresCalibration(),
                d.writesModel(), params);
    }

    static ParamView view(ParamSpec p) {
        return new ParamView(p.name(), p.type().name().toLowerCase(), p.defaultValue(), p.required(), p.min(),
                p.minExclusive(), p.max(), p.maxExclusive(), p.choices(), p.rangeText(), p.description());
    }

    @GetMapping(value = "/devices", produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "The compute devices this process sees: the CPU and each GPU with compute capability, memory "
            + "and whether the kernels and cuBLAS loaded")
    public List<DeviceInfo> devices() {
        return Backends.devices();
    }
}
