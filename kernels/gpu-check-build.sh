#!/usr/bin/env bash
# Builds the payload that kernels/gpu-check.sh runs on a bare GPU machine (no JDK, no Maven, no NVRTC 12 or
# cuBLAS 12 expected; a CUDA 13 driver and nvcc expected). Run it here, on the build machine:
#
#   bash kernels/gpu-check-build.sh [payload-dir]        (default kernels/target/gpu-check)
#
# The payload (about 45 MiB, checked against the 64 MiB a device call carries):
#   jre.tgz            a jlinked Java 17 runtime with only the modules the classes need
#   lib/*.jar          slim jars of the engine, kernels glue and their tests (no Spring, no fat jar) and the few
#                      libraries they use: JCuda, OpenBLAS (the CPU reference), Jackson, JUnit, AssertJ
#   native/*.so        JCuda's JNI libraries for the driver, NVRTC and cuBLAS (loaded from java.library.path)
#   cubins/*.cubin     every kernel module built by nvcc for sm_90 (the GPU machine has no NVRTC 12)
#   MANIFEST.txt       commit, date and sizes
# Then, with the device tool: carry ["kernels/target/gpu-check"], command "bash kernels/gpu-check.sh".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
payload=${1:-$root/kernels/target/gpu-check}
archs=${WHITTLE_GPU_CHECK_ARCHS:-sm_90}
budget=$((60 * 1024 * 1024))
cd "$root"

echo "[gpu-check-build] compiling (tests skipped) ..."
mvn -B -q ${MVN_OFFLINE:--o} -pl service -am test-compile
mvn -B -q ${MVN_OFFLINE:--o} -pl service -am dependency:build-classpath -Dmdep.includeScope=test \
  -Dmdep.outputFile="$root/kernels/target/gpu-check-classpath.txt" >/dev/null

rm -rf "$payload"
mkdir -p "$payload/lib" "$payload/native" "$payload/cubins"

# slim jars of our own classes (the service jar is a Spring Boot fat jar; the engine needs none of it)
jar cf "$payload/lib/whittle-kernels.jar" -C kernels/target/classes .
jar cf "$payload/lib/whittle-kernels-tests.jar" -C kernels/target/test-classes .
jar cf "$payload/lib/whittle-engine.jar" -C service/target/classes .
jar cf "$payload/lib/whittle-engine-tests.jar" -C service/target/test-classes .

# the libraries the engine and the suites use, by group; JCuda's natives jars are unpacked below instead
tr ':' '\n' < kernels/target/gpu-check-classpath.txt | while read -r jar; do
  case "$jar" in
    */org/jcuda/*natives*) ;;
    */org/jcuda/*|*/org/bytedeco/*|*/tools/jackson/*|*/com/fasterxml/jackson/core/jackson-annotations/*|\
    */org/junit/*|*/org/opentest4j/*|*/org/apiguardian/*|*/org/assertj/*|*/org/jspecify/*)
      cp "$jar" "$payload/lib/" ;;
  esac
done
for natives in $(tr ':' '\n' < kernels/target/gpu-check-classpath.txt | grep 'org/jcuda/.*natives'); do
  unzip -q -o -j "$natives" 'lib/libJCudaDriver-*' 'lib/libJNvrtc-*' 'lib/libJCublas2-*' -d "$payload/native" 2>/dev/null || \
    unzip -q -o -j "$natives" 'lib/libJCudaDriver-*' 'lib/libJNvrtc-*' 'lib/libJCublas2-*' -d "$payload/native" || true
done
for lib in JCudaDriver JNvrtc JCublas2; do
  ls "$payload/native"/lib$lib-*.so >/dev/null || { echo "missing JCuda native $lib" >&2; exit 1; }
done

# kernels for the GPU, built by nvcc (errors fail the build, as in CI)
if command -v nvcc >/dev/null; then
  WHITTLE_CUDA_ARCHS="$archs" bash kernels/build/nvcc-check.sh kernels/src/main/cuda kernels/target/cubins
  for a in $archs; do cp kernels/target/cubins/*."$a".cubin "$payload/cubins/"; done
else
  echo "[gpu-check-build] nvcc not found: no cubins carried; gpu-check.sh compiles them on the GPU machine" >&2
fi

# a runtime with the modules the code paths of the check use (jdeps lists more: java.desktop and jdk.jfr come
# from library features the check never touches, e.g. AssertJ's bean introspection, and would double the size)
modules=${WHITTLE_GPU_CHECK_MODULES:-java.base,java.logging,jdk.unsupported,java.sql,java.management}
rm -rf "$root/kernels/target/gpu-check-jre"
jlink --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --compress=0 \
  --output "$root/kernels/target/gpu-check-jre"
# uncompressed modules gzip smaller (18.7 MB) than jlink-compressed ones (22.6 MB)
tar -C "$root/kernels/target" -czf "$payload/jre.tgz" --transform 's|^gpu-check-jre|jre|' gpu-check-jre

# tiny synthetic models for the transformers golden-logit check (tools/transformers_golden.py, run where PyTorch is)
bash "$root/tools/prepare-transformers-golden.sh" "$payload/golden" >/dev/null

total=$(du -sb "$payload" | cut -f1)
{
  echo "whittle gpu-check payload"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!kernels/target' || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(java -version 2>&1 | head -1)"
  echo "jre modules: $modules"
  echo "cubins: $archs ($(nvcc --version 2>/dev/null | tail -1 || echo 'none'))"
  echo "total: $total bytes"
  (cd "$payload" && du -b jre.tgz lib/* native/* cubins/* 2>/dev/null)
} > "$payload/MANIFEST.txt"
cat "$payload/MANIFEST.txt"
if [ "$total" -gt "$budget" ]; then
  echo "[gpu-check-build] payload is $total bytes, over the $budget-byte budget (64 MiB per device call, less the repository)" >&2
  exit 1
fi
echo "[gpu-check-build] payload ready in $payload ($((total / 1024 / 1024)) MiB)"
