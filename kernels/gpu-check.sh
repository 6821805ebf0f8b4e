#!/usr/bin/env bash
# The GPU check: run on a bare GPU machine from the repository root, with the payload that
# kernels/gpu-check-build.sh made on the build machine carried along:
#
#   device tool: carry ["kernels/target/gpu-check"], command "bash kernels/gpu-check.sh", timeout ~480 s
#
# It measures the card's ceilings with PyTorch where present (bf16 matrix product, device copy) as an independent
# reference, runs the kernels module's device tests and the CUDA backend conformance suites (fp32 and bf16 matrix
# products; every launch synchronised so a fault names its kernel), then the kernel benchmarks on the real models'
# layer shapes against the copy bandwidth and matrix rates measured in the same run, and one decoder layer's
# forward. Full results go to $OUT (or $WHITTLE_GPU_CHECK_OUT, default ./gpu-check-out): results.md,
# gpu-check.log, conformance.txt, benchmarks.json, summary.md. The short table is printed last.
# Without a GPU it runs the same steps on the CPU backend (the CUDA suites report why they are skipped), which is
# how the script itself is tested on the build machine. Exit status: non-zero when a test failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
payload=${1:-$root/kernels/target/gpu-check}
out=${OUT:-${WHITTLE_GPU_CHECK_OUT:-$root/gpu-check-out}}
work=${TMPDIR:-/tmp}/whittle-gpu-check
mkdir -p "$out" "$work"
log="$out/gpu-check.log"
: > "$log"
say() { echo "[gpu-check] $*" | tee -a "$log"; }
start=$(date +%s)

if [ ! -f "$payload/jre.tgz" ]; then
  echo "no payload at $payload: run 'bash kernels/gpu-check-build.sh' on the build machine and carry kernels/target/gpu-check" >&2
  exit 2
fi
say "payload: $(sed -n 2,3p "$payload/MANIFEST.txt" | tr '\n' ' ')"

# the card, as the driver sees it
card="no NVIDIA GPU"
if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  card=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | head -1)
  nvidia-smi >> "$log" 2>&1
fi
say "card: $card"

# cubins: carried ones for this architecture, else built here with this machine's nvcc
cubins=${WHITTLE_GPU_CHECK_CUBINS:-$payload/cubins}
if [ "$card" != "no NVIDIA GPU" ]; then
  arch="sm_$(echo "$card" | awk -F', ' '{print $4}' | tr -d '.')"
  if ! ls "$cubins"/*."$arch".cubin >/dev/null 2>&1; then
    if command -v nvcc >/dev/null; then
      say "no carried cubins for $arch; building them with $(nvcc --version | tail -1)"
      cubins="$work/cubins"
      WHITTLE_CUDA_ARCHS="$arch" bash "$root/kernels/build/nvcc-check.sh" "$root/kernels/src/main/cuda" "$cubins" >> "$log" 2>&1 \
        || say "nvcc failed (see log); the backend will report why it cannot load its kernels"
    else
      say "no carried cubins for $arch and no nvcc: the backend will try NVRTC"
    fi
  fi
fi

# an independent ceiling from PyTorch, if this machine has it (not required)
torch_line="PyTorch not available"
if command -v python3 >/dev/null && [ "$card" != "no NVIDIA GPU" ]; then
  torch_line=$(timeout 120 python3 - <<'EOF' 2>>"$log" || echo "PyTorch ceiling measurement failed (see log)"
import torch
if not torch.cuda.is_available():
    print("PyTorch sees no GPU")
else:
    def bench(f, n=10):
        for _ in range(3):
            f()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(n):
            f()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) / n / 1e3
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t = bench(lambda: a @ b)
    x = torch.empty(256 << 20, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    c = bench(lambda: y.copy_(x))
    print(f"PyTorch {torch.__version__}: bf16 matmul 8192^3 {2 * 8192**3 / t / 1e12:.1f} TFLOP/s, "
          f"device copy 1 GiB {2 * x.numel() * 4 / c / 1e9:.0f} GB/s (read + write)")
EOF
)
fi
say "reference: $torch_line"

# the Java runtime
rm -rf "$work/jre"
tar -C "$work" -xzf "$payload/jre.tgz"
java="$work/jre/bin/java"
say "java: $("$java" -version 2>&1 | head -1)"

export WHITTLE_CUDA_CUBIN_DIR="$cubins"
export WHITTLE_CUDA_CACHE_DIR="$work/cubin-cache"
export WHITTLE_CUDA_SYNC_LAUNCHES=true
"$java" -Xmx16g -XX:+UseParallelGC \
  -Djava.library.path="$payload/native" \
  -Djava.io.tmpdir="$work" \
  -Dorg.bytedeco.javacpp.cachedir="$work/javacpp" \
  -cp "$payload/lib/*" io.whittle.compute.GpuCheck "$out" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}

# golden per-sequence NLLs from transformers for the engine's tiny test models (commit the file as
# service/src/test/resources/golden/transformers-golden.json; TransformersGoldenTest then compares)
golden_line="transformers golden: not run (no PyTorch/transformers or no payload/golden)"
if [ -d "$payload/golden" ] && python3 -c 'import torch, transformers, safetensors' >/dev/null 2>&1; then
  if timeout 300 python3 "$root/tools/transformers_golden.py" "$payload/golden" "$out/transformers-golden.json" >> "$log" 2>&1; then
    golden_line="transformers golden: written to transformers-golden.json"
  else
    golden_line="transformers golden: failed (see gpu-check.log)"
  fi
fi
say "$golden_line"

{
  echo "# Whittle GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- card: $card"
  echo "- reference: $torch_line"
  echo "- $golden_line"
  echo "- payload: $(sed -n 2p "$payload/MANIFEST.txt")"
  echo "- exit status: $status; wall time $(( $(date +%s) - start )) s"
  echo
  [ -f "$out/summary.md" ] && cat "$out/summary.md" || echo "(the Java part wrote no summary; see gpu-check.log)"
} > "$out/results.md"
echo
cat "$out/results.md"
exit "$status"
