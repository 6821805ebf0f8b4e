/**
 * WGSEF structured sparsification: the mathematical core of issue 5, following the method reference
 * {@code shared/references/wgsef.md} (section numbers below are that document's).
 *
 * <h2>Building blocks</h2>
 * <ul>
 *   <li>{@link io.whittle.methods.wgsef.Wgsef}: the operator on one problem's group norms: value S_{k,d} (§1.3),
 *       conjugate, gradient factors, the prox PROX_WGSEF with its three cases (§2.2), the exactly-k gap condition
 *       (§2.3(4)); and the prox over whole matrices of a partition.</li>
 *   <li>{@link io.whittle.methods.wgsef.RootFinder}: the three exact root finders of §2.4 (seeded random pivot,
 *       sort + scan, bisection), all with the closed-form finish and the flat-root case.</li>
 *   <li>{@link io.whittle.methods.wgsef.GroupSpec}, {@link io.whittle.methods.wgsef.Keep},
 *       {@link io.whittle.methods.wgsef.GroupWeights}: the {@code groups}, {@code keep} and {@code weights}
 *       parameters; {@link io.whittle.methods.wgsef.GroupPartition}: a spec applied to named matrices (§3.2, §7).</li>
 *   <li>{@link io.whittle.methods.wgsef.ExactKProjection}: the final projection to exactly k groups, ties to the
 *       lower index, with the data-free debias (undo of the ridge shrink) and the gap report (§2.3, service rule).</li>
 *   <li>{@link io.whittle.methods.wgsef.Gram}: the calibration statistic X^T X / n of a layer input.</li>
 *   <li>{@link io.whittle.methods.wgsef.GroupSolver}: {@link io.whittle.methods.wgsef.LayerwiseSolver}
 *       ({@code solver=layerwise}, §7: FISTA, lambda continuation, projection and least-squares refit, best support
 *       along the path) and {@link io.whittle.methods.wgsef.MagnitudeBaseline} ({@code solver=magnitude}), both
 *       returning a {@link io.whittle.methods.wgsef.WgsefSolution} with its
 *       {@link io.whittle.methods.wgsef.WgsefResult}.</li>
 * </ul>
 *
 * <h2>Typical use by a job</h2>
 * <pre>{@code
 * GroupSpec spec = GroupSpec.parse(params.get("groups"));          // throws naming "groups"
 * GroupPartition p = GroupPartition.of(spec, new GroupPartition.Matrix(name, rows, cols), modelSpec.headDim());
 * int k = p.level(spec.kind() == GroupSpec.Kind.NM ? null : Keep.parse(params.get("keep")));
 * GroupSolver solver = GroupSolver.named(params.get("solver"), LayerwiseSolver.Options.defaults());
 * WgsefSolution s = solver.solve(p, GroupWeights.parse(params.get("weights")), k, List.of(w), List.of(gram));
 * }</pre>
 * For {@code mlp-channels} build the partition with {@link io.whittle.methods.wgsef.GroupPartition#mlpChannels}
 * and pass gate, up, down with the statistics of the MLP input (twice) and of the intermediate activation.
 *
 * <p>Nothing here uses Spring; matrices are row-major {@code float[]}, norms and roots FP64, products OpenBLAS.
 */
package io.whittle.methods.wgsef;
