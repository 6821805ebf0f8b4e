#!/usr/bin/env python3
"""Regenerates service/src/test/resources/golden/forward-golden.json: for each case, a tiny synthetic model
(written by `whittle synth`, deterministic by seed) and calibration tokens, with the per-sequence mean NLL computed
by the independent float64 numpy reference (tools/reference_forward.py). ForwardGoldenTest re-synthesizes the same
models in Java and must match.

usage: tools/make_forward_golden.py path/to/whittle.jar
"""
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import reference_forward as ref  # noqa: E402

CASES = [
    dict(family="llama", layers=2, hidden=64, intermediate=96, heads=4, kv_heads=4, vocab=200, seed=11, dtype="bf16"),
    dict(family="llama", layers=2, hidden=48, intermediate=80, heads=6, kv_heads=2, vocab=150, seed=12, dtype="f16"),
    dict(family="mixtral", layers=2, hidden=64, intermediate=96, experts=4, top_k=2, heads=4, kv_heads=2, vocab=200,
         seed=13, dtype="bf16"),
    dict(family="qwen2_moe", layers=2, hidden=64, intermediate=128, experts=6, top_k=2, moe_intermediate=32,
         shared_intermediate=64, heads=4, kv_heads=2, vocab=200, seed=14, dtype="bf16"),
    dict(family="qwen3_moe", layers=2, hidden=64, intermediate=128, experts=6, top_k=3, moe_intermediate=32, heads=4,
         kv_heads=2, vocab=200, seed=15, dtype="f32"),
    dict(family="olmoe", layers=2, hidden=64, intermediate=32, experts=6, top_k=2, heads=4, kv_heads=4, vocab=200,
         seed=16, dtype="bf16"),
    dict(family="deepseek", layers=3, hidden=64, intermediate=128, experts=6, top_k=3, moe_intermediate=32,
         shared_intermediate=64, heads=4, kv_heads=4, vocab=200, seed=17, dtype="bf16"),
    dict(family="llava", layers=2, hidden=64, intermediate=96, heads=4, kv_heads=4, vocab=300, seed=18, dtype="bf16"),
]


def main():
    jar = sys.argv[1]
    out = []
    rnd = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(CASES):
            d = Path(tmp) / f"m{i}"
            args = ["java", "-jar", jar, "synth", "--family", c["family"], "--layers", str(c["layers"]),
                    "--hidden", str(c["hidden"]), "--intermediate", str(c["intermediate"]), "--heads", str(c["heads"]),
                    "--kv-heads", str(c["kv_heads"]), "--vocab", str(c["vocab"]), "--seed", str(c["seed"]),
                    "--dtype", c["dtype"], "--out", str(d)]
            for k in ("experts", "top_k", "moe_intermediate", "shared_intermediate"):
                if k in c:
                    args += ["--" + k.replace("_", "-"), str(c[k])]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
            seqs = [[rnd.randrange(c["vocab"]) for _ in range(rnd.randrange(12, 40))] for _ in range(3)]
            cfg, t = ref.load(d)
            per = [float(ref.forward(cfg, t, __import__("numpy").array(s)).mean()) for s in seqs]
            out.append(dict(case=c, input_ids=seqs, per_sequence_mean_nll=per))
    target = Path(__file__).resolve().parent.parent / "service/src/test/resources/golden/forward-golden.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main()
