#!/usr/bin/env bash
# Compiles every CUDA source for the GPU architectures Whittle targets (A100 = sm_80, H100/H200 = sm_90).
# Fails on any compiler error or warning-as-error. Skips (exit 0, with a message) where nvcc is absent,
# so a machine with only Java and Maven still builds; CI machines have nvcc and always run it.
set -euo pipefail
src_dir=${1:?source dir}
out_dir=${2:?output dir}
archs=${WHITTLE_CUDA_ARCHS:-"sm_80 sm_90"}
nvcc_bin=${NVCC:-$(command -v nvcc || true)}
if [ -z "$nvcc_bin" ]; then
  echo "[nvcc-check] nvcc not found on PATH: CUDA sources not compiled (set NVCC to enable)"
  exit 0
fi
mkdir -p "$out_dir"
shopt -s nullglob
sources=("$src_dir"/*.cu)
if [ ${#sources[@]} -eq 0 ]; then
  echo "[nvcc-check] no .cu files in $src_dir" >&2
  exit 1
fi
for f in "${sources[@]}"; do
  base=$(basename "$f" .cu)
  for arch in $archs; do
    out="$out_dir/${base}.${arch}.cubin"
    if [ -f "$out" ] && [ "$out" -nt "$f" ] && [ -z "$(find "$src_dir" -name '*.cuh' -newer "$out")" ]; then
      continue
    fi
    "$nvcc_bin" -std=c++17 -arch="$arch" -cubin -Werror all-warnings -lineinfo -I "$src_dir" -o "$out" "$f"
  done
done
echo "[nvcc-check] compiled ${#sources[@]} CUDA source(s) for: $archs ($("$nvcc_bin" --version | tail -1))"
