#!/usr/bin/env bash
# Builds the CPU emulator of the CUDA driver and every kernel module for it (test tooling, see emu_runtime.h):
#   <out>/lib/libcuda.so.1            the fake driver (put its directory on LD_LIBRARY_PATH)
#   <out>/cubins/<module>.sm_90.cubin  each module as a host shared library, named like nvcc's cubins so the
#                                      Java module loader finds them through whittle.cuda.cubin-dir
# Usage: build.sh [out-dir]   (default kernels/target/emu)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../src/main/cuda" && pwd)
out=${1:-$here/../target/emu}
mkdir -p "$out/lib" "$out/cubins" "$out/gen"
out=$(cd "$out" && pwd)
CXX=${CXX:-g++}
flags=(-std=c++17 -O2 -g -fPIC -shared -Wall -Wno-unknown-pragmas -Wno-unused-function -Werror -fno-strict-aliasing)
if [ ! -f "$out/lib/libcuda.so.1" ] || [ "$here/fake_cuda.cpp" -nt "$out/lib/libcuda.so.1" ]; then
  "$CXX" "${flags[@]}" -o "$out/lib/libcuda.so.1" "$here/fake_cuda.cpp" -ldl
fi
for cu in "$src"/*.cu; do
  base=$(basename "$cu" .cu)
  target="$out/cubins/$base.sm_90.cubin"
  if [ -f "$target" ] && [ "$target" -nt "$cu" ] && [ "$target" -nt "$here/emu_runtime.h" ] \
     && [ -z "$(find "$src" -name '*.cuh' -newer "$target")" ]; then
    continue
  fi
  "$CXX" -std=c++17 -E -P -x c++ -I "$src" "$cu" -o "$out/gen/$base.ii"
  python3 "$here/gen_trampolines.py" "$out/gen/$base.ii" "$cu" "$out/gen/$base.emu.cpp"
  "$CXX" "${flags[@]}" -I "$src" -I "$here" -o "$target" "$out/gen/$base.emu.cpp"
done
echo "[emu] fake driver and kernel modules in $out"
