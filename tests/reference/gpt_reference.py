#!/usr/bin/python3
"""PyTorch reference for mtt's GPT models (tests/lua/test_gpt_reference.lua).

Debian's python3-torch comes without the transformers package, so both layouts are written
out here in plain PyTorch, following Hugging Face's GPT2LMHeadModel and GPTNeoXForCausalLM
(same tensor names and shapes, same arithmetic): GPT-2 with Conv1D weights [in, out], learned
positions, pre-LN blocks and a tied head; GPT-NeoX with interleaved query_key_value rows,
rotary embeddings on the first rotary_ndims of each head, parallel or sequential residuals and
an untied head.

The exchange files use the safetensors layout (8-byte little-endian header length, a JSON
header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw data), read
and written here by hand.

usage: gpt_reference.py CASE.safetensors RESULTS.safetensors [CASE2 RESULTS2 ...]
  CASE: every parameter by name, "idx" and "targets" (I32 [B, T]), optionally "mask" (F32);
        metadata "arch" (gpt2 | gpt_neox) and "config" (JSON: the model's resolved config).
  RESULTS: "logits", "loss", "grad.<name>" for every parameter, and for gpt_neox
        "rotary.cos" / "rotary.sin" [max_position_embeddings, rotary_ndims].
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32}
NAMES = {v: k for k, v in DTYPES.items()}


def read_tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a : base + b]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_tensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def activation(name):
    if name in ("gelu_new", "gelu_fast", "gelu_pytorch_tanh"):
        # Hugging Face's NewGELUActivation
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == "gelu":
        return F.gelu  # exact, erf
    if name == "relu":
        return F.relu
    raise ValueError("unknown activation " + name)


def causal_attention(q, k, v, scale_div):
    """softmax(q k^T / scale_div, causal) v for [B, H, T, D], as Hugging Face's eager path."""
    t = q.shape[-2]
    w = torch.matmul(q, k.transpose(-1, -2)) / scale_div
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    w = torch.where(mask, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
    return torch.matmul(torch.softmax(w, dim=-1), v)


def gpt2_forward(p, c, idx):
    b, t = idx.shape
    n, h = c["n_embd"], c["n_head"]
    d = n // h
    eps = c["layer_norm_epsilon"]
    act = activation(c["activation_function"])
    ids = idx.long()
    x = F.embedding(ids, p["transformer.wte.weight"]) + p["transformer.wpe.weight"][:t]
    for i in range(c["n_layer"]):
        pre = "transformer.h.%d." % i
        a = F.layer_norm(x, (n,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = torch.addmm(p[pre + "attn.c_attn.bias"], a.reshape(-1, n), p[pre + "attn.c_attn.weight"]).view(b, t, 3 * n)
        q, k, v = qkv.split(n, dim=2)
        q, k, v = (z.view(b, t, h, d).transpose(1, 2) for z in (q, k, v))
        div = math.sqrt(d) if c["scale_attn_weights"] else 1.0
        if c["scale_attn_by_inverse_layer_idx"]:
            div = div * (i + 1)
        y = causal_attention(q, k, v, div).transpose(1, 2).reshape(b, t, n)
        y = torch.addmm(p[pre + "attn.c_proj.bias"], y.reshape(-1, n), p[pre + "attn.c_proj.weight"]).view(b, t, n)
        x = x + y
        m = F.layer_norm(x, (n,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        inner = p[pre + "mlp.c_fc.weight"].shape[1]
        m = torch.addmm(p[pre + "mlp.c_fc.bias"], m.reshape(-1, n), p[pre + "mlp.c_fc.weight"]).view(b, t, inner)
        m = torch.addmm(p[pre + "mlp.c_proj.bias"], act(m).reshape(-1, inner), p[pre + "mlp.c_proj.weight"]).view(b, t, n)
        x = x + m
    x = F.layer_norm(x, (n,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    head = p["transformer.wte.weight"] if c["tie_word_embeddings"] else p["lm_head.weight"]
    return F.linear(x, head)


def rotary_tables(c):
    """cos, sin [max_position_embeddings, rotary_ndims] as Hugging Face's GPTNeoXRotaryEmbedding."""
    d = c["hidden_size"] // c["num_attention_heads"]
    r = int(d * c["rotary_pct"])
    inv_freq = 1.0 / (c["rotary_emb_base"] ** (torch.arange(0, r, 2, dtype=torch.int64).float() / r))
    t = torch.arange(c["max_position_embeddings"], dtype=torch.int64).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def neox_forward(p, c, idx):
    b, t = idx.shape
    n, h = c["hidden_size"], c["num_attention_heads"]
    d = n // h
    r = int(d * c["rotary_pct"])
    eps = c["layer_norm_eps"]
    act = activation(c["hidden_act"])
    cos, sin = rotary_tables(c)
    cos, sin = cos[:t][None, None], sin[:t][None, None]
    x = F.embedding(idx.long(), p["gpt_neox.embed_in.weight"])
    for i in range(c["num_hidden_layers"]):
        pre = "gpt_neox.layers.%d." % i
        a = F.layer_norm(x, (n,), p[pre + "input_layernorm.weight"], p[pre + "input_layernorm.bias"], eps)
        qkv = F.linear(a, p[pre + "attention.query_key_value.weight"], p.get(pre + "attention.query_key_value.bias"))
        qkv = qkv.view(b, t, h, 3 * d)
        q = qkv[..., :d].permute(0, 2, 1, 3)
        k = qkv[..., d : 2 * d].permute(0, 2, 1, 3)
        v = qkv[..., 2 * d :].permute(0, 2, 1, 3)
        q_rot, q_pass = q[..., :r], q[..., r:]
        k_rot, k_pass = k[..., :r], k[..., r:]
        q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
        k = torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
        y = causal_attention(q, k, v, math.sqrt(d)).permute(0, 2, 1, 3).reshape(b, t, n)
        y = F.linear(y, p[pre + "attention.dense.weight"], p.get(pre + "attention.dense.bias"))

        def mlp(z):
            z = F.linear(z, p[pre + "mlp.dense_h_to_4h.weight"], p[pre + "mlp.dense_h_to_4h.bias"])
            return F.linear(act(z), p[pre + "mlp.dense_4h_to_h.weight"], p[pre + "mlp.dense_4h_to_h.bias"])

        ln2w, ln2b = p[pre + "post_attention_layernorm.weight"], p[pre + "post_attention_layernorm.bias"]
        if c["use_parallel_residual"]:
            x = mlp(F.layer_norm(x, (n,), ln2w, ln2b, eps)) + y + x
        else:
            y = y + x
            x = mlp(F.layer_norm(y, (n,), ln2w, ln2b, eps)) + y
    x = F.layer_norm(x, (n,), p["gpt_neox.final_layer_norm.weight"], p["gpt_neox.final_layer_norm.bias"], eps)
    head = p["gpt_neox.embed_in.weight"] if c["tie_word_embeddings"] else p["embed_out.weight"]
    return F.linear(x, head)


def loss_of(logits, targets, mask):
    """Mean cross-entropy over the positions that count (target != -100 and mask != 0)."""
    v = logits.shape[-1]
    tg = targets.reshape(-1).long()
    per = F.cross_entropy(logits.reshape(-1, v), tg, reduction="none", ignore_index=-100)
    weight = (tg != -100).to(logits.dtype)
    if mask is not None:
        weight = weight * mask.reshape(-1)
    return (per * weight).sum() / (weight != 0).sum().clamp(min=1)


def run(case_path, result_path):
    tensors, meta = read_tensors(case_path)
    c = json.loads(meta["config"])
    idx, targets, mask = tensors.pop("idx"), tensors.pop("targets"), tensors.pop("mask", None)
    params = {k: v.requires_grad_(True) for k, v in tensors.items()}
    forward = {"gpt2": gpt2_forward, "gpt_neox": neox_forward}[meta["arch"]]
    logits = forward(params, c, idx)
    loss = loss_of(logits, targets, mask)
    loss.backward()
    out = {"logits": logits, "loss": loss.reshape(1)}
    for k, v in params.items():
        out["grad." + k] = v.grad if v.grad is not None else torch.zeros_like(v)
    if meta["arch"] == "gpt_neox":
        cos, sin = rotary_tables(c)
        out["rotary.cos"], out["rotary.sin"] = cos, sin
    write_tensors(result_path, out)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: gpt_reference.py CASE RESULTS [CASE RESULTS ...]")
    for i in range(0, len(args), 2):
        run(args[i], args[i + 1])


if __name__ == "__main__":
    main()
