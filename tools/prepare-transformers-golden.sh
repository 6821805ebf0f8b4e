#!/usr/bin/env bash
# Builds the payload for tools/transformers_golden.py: the tiny synthetic models of forward-golden.json, written by
# `whittle synth` with the same seeds, plus the token sequences. Run here (Java), carry the payload to a machine with
# PyTorch + transformers, run:  python3 tools/transformers_golden.py tools/golden-payload "$OUT/transformers-golden.json"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jar="$root/service/target/whittle.jar"
out="${1:-$root/tools/golden-payload}"
[ -f "$jar" ] || (cd "$root" && mvn -B -q -DskipTests package)
rm -rf "$out"
mkdir -p "$out"
golden="$root/service/src/test/resources/golden/forward-golden.json"
cp "$golden" "$out/forward-golden.json"
python3 - "$golden" "$out" "$jar" <<'PY'
import json, subprocess, sys
golden, out, jar = sys.argv[1:4]
for i, g in enumerate(json.load(open(golden))):
    c = g["case"]
    args = ["java", "-jar", jar, "synth", "--family", c["family"], "--layers", str(c["layers"]), "--hidden", str(c["hidden"]),
            "--intermediate", str(c["intermediate"]), "--heads", str(c["heads"]), "--kv-heads", str(c["kv_heads"]),
            "--vocab", str(c["vocab"]), "--seed", str(c["seed"]), "--dtype", c["dtype"], "--shards", "2",
            "--out", f"{out}/case{i}"]
    for k in ("experts", "top_k", "moe_intermediate", "shared_intermediate"):
        if k in c:
            args += ["--" + k.replace("_", "-"), str(c[k])]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
PY
du -sh "$out"
