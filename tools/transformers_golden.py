#!/usr/bin/env python3
"""Golden per-sequence NLLs from Hugging Face transformers for the tiny models of forward-golden.json.

Run on a machine with PyTorch and transformers (e.g. the lent GPU machine); no network needed. Input: a payload
directory made by tools/prepare-transformers-golden.sh (one synthetic model directory per case, written by
`whittle synth` with the seeds of service/src/test/resources/golden/forward-golden.json). Output: a JSON file with,
per case, the per-sequence mean NLL that transformers computes in float32 and float64 for the same token
sequences; commit it as service/src/test/resources/golden/transformers-golden.json and TransformersGoldenTest
compares the engine against it.

usage: transformers_golden.py PAYLOAD_DIR OUT.json
"""
import json
import sys
from pathlib import Path


def load_model(model_dir, dtype):
    import torch
    import transformers
    from safetensors.torch import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    mt = cfg["model_type"]
    if mt == "deepseek":
        return None, "deepseek needs the hub's remote code (modeling_deepseek.py), not part of transformers"
    if mt == "llava":
        # text-only: the language model is a LlamaForCausalLM under the legacy "language_model." prefix
        text = transformers.LlamaConfig(**{k: v for k, v in cfg["text_config"].items() if k != "model_type"})
        model = transformers.LlamaForCausalLM(text)
        state = {}
        for f in sorted(model_dir.glob("*.safetensors")):
            for k, v in load_file(str(f)).items():
                if k.startswith("language_model."):
                    state[k[len("language_model."):]] = v
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            return None, "missing language-model tensors: %s" % missing[:5]
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32,
                                                                  attn_implementation="eager")
    model = model.to(dtype)
    model.eval()
    return model, None


def nll_per_sequence(model, seqs, dtype, device):
    import torch

    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s], device=device)
            logits = model(input_ids=ids).logits[0].to(torch.float64)
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll = -logp.gather(1, ids[0, 1:, None]).squeeze(1)
            out.append(float(nll.mean()))
    return out


def main():
    import torch
    import transformers

    payload, target = Path(sys.argv[1]), Path(sys.argv[2])
    cases = json.loads((payload / "forward-golden.json").read_text())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for i, case in enumerate(cases):
        model_dir = payload / f"case{i}"
        entry = {"case": case["case"], "input_ids": case["input_ids"]}
        for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
            model, why = load_model(model_dir, dtype)
            if model is None:
                entry["skipped"] = why
                break
            model = model.to(device)
            entry["per_sequence_mean_nll_" + name] = nll_per_sequence(model, case["input_ids"], dtype, device)
        results.append(entry)
        print(i, case["case"]["family"], entry.get("skipped") or entry.get("per_sequence_mean_nll_float64"), flush=True)
    target.write_text(json.dumps({"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                                  "device": device, "cases": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
