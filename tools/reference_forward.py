#!/usr/bin/env python3
"""Independent float64 reference of Whittle's decoder forward (numpy only; no torch needed).

Reads a Hugging Face model directory written in safetensors (single file or sharded), runs the exact
transformers forward semantics in float64 and prints the same JSON as `whittle eval`. Used to cross-check the
Java engine; see forward-semantics.md for the rules implemented here.

usage: reference_forward.py MODEL_DIR CALIBRATION.json
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[b:end]
        dt = e["dtype"]
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        elif dt == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        else:
            raise ValueError(dt)
        out[name] = a.astype(np.float64).reshape(e["shape"])
    return out


def load(model):
    model = Path(model)
    idx = model / "model.safetensors.index.json"
    tensors = {}
    if idx.exists():
        files = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
        for f in files:
            tensors.update(read_safetensors(model / f))
    else:
        tensors.update(read_safetensors(model / "model.safetensors"))
    return json.loads((model / "config.json").read_text()), tensors


def rms(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def rope(x, pos, theta):  # x [L, H, d]
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = pos[:, None] * inv[None, :]
    cos = np.cos(np.concatenate([ang, ang], -1))[:, None, :]
    sin = np.sin(np.concatenate([ang, ang], -1))[:, None, :]
    rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * cos + rot * sin


def silu(x):
    return x / (1 + np.exp(-x))


def mlp(x, t, g, u, d):
    return (silu(x @ t[g].T) * (x @ t[u].T)) @ t[d].T


def forward(cfg, t, ids):
    mt = cfg["model_type"]
    c = cfg["text_config"] if mt == "llava" else cfg
    p = "language_model.model." if mt == "llava" else "model."
    H = c.get("hidden_size", 4096)
    nh = c.get("num_attention_heads", 32)
    nkv = c.get("num_key_value_heads", nh)
    hd = c.get("head_dim") or H // nh
    eps = c.get("rms_norm_eps", 1e-6)
    theta = c.get("rope_theta", 10000.0)
    L = len(ids)
    pos = np.arange(L, dtype=np.float64)
    h = t[p + "embed_tokens.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        q_ = p + f"layers.{l}."
        x = rms(h, t[q_ + "input_layernorm.weight"], eps)
        a = q_ + "self_attn."
        q = x @ t[a + "q_proj.weight"].T + t.get(a + "q_proj.bias", 0)
        k = x @ t[a + "k_proj.weight"].T + t.get(a + "k_proj.bias", 0)
        v = x @ t[a + "v_proj.weight"].T + t.get(a + "v_proj.bias", 0)
        if mt == "olmoe":
            q = rms(q, t[a + "q_norm.weight"], eps)
            k = rms(k, t[a + "k_norm.weight"], eps)
        q = q.reshape(L, nh, hd)
        k = k.reshape(L, nkv, hd)
        v = v.reshape(L, nkv, hd)
        if mt == "qwen3_moe":
            q = rms(q, t[a + "q_norm.weight"], eps)
            k = rms(k, t[a + "k_norm.weight"], eps)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        s = np.einsum("ihd,jhd->hij", q, k) / np.sqrt(hd)
        s = s + np.triu(np.full((L, L), -np.inf), 1)[None]
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        o = np.einsum("hij,jhd->ihd", s, v).reshape(L, nh * hd)
        h = h + o @ t[a + "o_proj.weight"].T
        x = rms(h, t[q_ + "post_attention_layernorm.weight"], eps)
        m = q_ + ("block_sparse_moe." if mt == "mixtral" else "mlp.")
        if m + "gate.weight" in t:
            logits = x @ t[m + "gate.weight"].T
            pr = np.exp(logits - logits.max(-1, keepdims=True))
            pr = pr / pr.sum(-1, keepdims=True)
            if mt == "mixtral":
                K, renorm, E = c["num_experts_per_tok"], True, c["num_local_experts"]
            elif mt == "deepseek":
                K, E = c["num_experts_per_tok"], c["n_routed_experts"]
                renorm = K > 1 and c.get("norm_topk_prob", False)
            else:
                K, E, renorm = c["num_experts_per_tok"], c["num_experts"], c.get("norm_topk_prob", False)
            y = np.zeros_like(x)
            for i in range(L):
                order = sorted(range(E), key=lambda e: (-pr[i, e], e))[:K]
                w = pr[i, order]
                if renorm:
                    w = w / (w.sum() + (1e-20 if mt == "deepseek" else 0))
                for e, we in zip(order, w):
                    ex = m + f"experts.{e}."
                    if mt == "mixtral":
                        y[i] += we * mlp(x[i:i + 1], t, ex + "w1.weight", ex + "w3.weight", ex + "w2.weight")[0]
                    else:
                        y[i] += we * mlp(x[i:i + 1], t, ex + "gate_proj.weight", ex + "up_proj.weight", ex + "down_proj.weight")[0]
            for sh in ("shared_expert.", "shared_experts."):
                if m + sh + "gate_proj.weight" in t:
                    ys = mlp(x, t, m + sh + "gate_proj.weight", m + sh + "up_proj.weight", m + sh + "down_proj.weight")
                    if m + "shared_expert_gate.weight" in t:
                        ys = ys / (1 + np.exp(-(x @ t[m + "shared_expert_gate.weight"].T)))
                    y = y + ys
        else:
            y = mlp(x, t, m + "gate_proj.weight", m + "up_proj.weight", m + "down_proj.weight")
        h = h + y
    h = rms(h, t[p + "norm.weight"], eps)
    head = t["language_model.lm_head.weight" if mt == "llava" else "lm_head.weight"] \
        if not c.get("tie_word_embeddings", False) else t[p + "embed_tokens.weight"]
    logits = h @ head.T
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    return lse[:-1] - logits[np.arange(L - 1), ids[1:]]


def main():
    cfg, t = load(sys.argv[1])
    seqs = json.loads(Path(sys.argv[2]).read_text())["input_ids"]
    per, total, n = [], 0.0, 0
    for s in seqs:
        nll = forward(cfg, t, np.array(s))
        per.append(float(nll.mean()))
        total += float(nll.sum())
        n += len(nll)
    print(json.dumps({"sequences": len(seqs), "tokens": n, "mean_nll": total / n,
                      "perplexity": float(np.exp(total / n)), "per_sequence_mean_nll": per}, indent=2))


if __name__ == "__main__":
    main()
