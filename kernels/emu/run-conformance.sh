#!/usr/bin/env bash
# Runs the CUDA backend's tests on the CPU emulator of the CUDA driver (no GPU needed): builds the fake
# libcuda.so.1 and the kernel modules as host libraries (build.sh), puts them where JCuda and the module loader
# look (LD_LIBRARY_PATH, WHITTLE_CUDA_CUBIN_DIR), and runs the given test classes (default: the CUDA conformance
# suites and the kernels module's device tests) with every launch synchronised so a fault names its kernel.
# What this checks: the Java glue end to end (probe, context, allocator, module loading, argument marshalling,
# launch shapes, copies) and the kernels' arithmetic and indexing under a strict execution model. What it cannot:
# real-GPU timing, memory-model races and speed (see kernels/gpu-check.sh for the GPU run).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
emu="$root/kernels/target/emu"
bash "$root/kernels/emu/build.sh" "$emu"
export LD_LIBRARY_PATH="$emu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export WHITTLE_CUDA_CUBIN_DIR="$emu/cubins"
export WHITTLE_CUDA_CACHE_DIR=none
export WHITTLE_CUDA_SYNC_LAUNCHES=true
tests=${1:-'CudaBackendConformanceTest,CudaBf16BackendConformanceTest,CudaStreamTest'}
cd "$root"
rm -rf kernels/target/surefire-reports service/target/surefire-reports
mvn -B -q ${MVN_OFFLINE--o} -pl service -am test -Dexec.skip -Dtest="$tests" -Dsurefire.failIfNoSpecifiedTests=false
for f in kernels/target/surefire-reports/*.txt service/target/surefire-reports/*.txt; do
  [ -f "$f" ] && grep -h "Tests run" "$f" || true
done
