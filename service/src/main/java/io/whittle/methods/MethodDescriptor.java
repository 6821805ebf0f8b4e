package io.whittle.methods;

import io.whittle.model.ModelSpec.Family;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * What a method is and accepts: its name, a one-line description, its parameters, the model families it applies
 * to, and whether it needs calibration data and writes a model.
 */
public record MethodDescriptor(String name, String description, List<ParamSpec> params, Set<Family> families,
                               boolean requiresCalibration, boolean writesModel) {

    public MethodDescriptor {
        params = List.copyOf(params);
        families = Set.copyOf(families);
    }

    public Optional<ParamSpec> param(String name) {
        return params.stream().filter(p -> p.name().equals(name)).findFirst();
    }
}
