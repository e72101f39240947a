#!/usr/bin/python3
"""PyTorch reference for mtt's op tests.

Reads a JSON list of cases written by tests/lua/test_reference.lua, computes each op's forward
and backward with PyTorch (Debian's python3-torch) on the same inputs and output gradient, and
writes the results as JSON. The op definitions below are the reference: plain PyTorch calls,
one per mtt op, with PyTorch's own (0-based) dims.

usage: torch_reference.py CASES.json RESULTS.json
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def attention(q, k, v, a):
    scale = a.get("scale") or 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(-2, -1) * scale
    if a.get("causal"):
        t, u = s.shape[-2], s.shape[-1]
        mask = torch.ones(t, u, dtype=torch.bool).triu(1 + u - t)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def cross_entropy(logits, targets, mask, a):
    v = logits.shape[-1]
    ignore = a.get("ignore_index", -100)
    per = F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1).long(), reduction="none", ignore_index=ignore)
    weight = (targets.reshape(-1) != ignore).to(logits.dtype)
    if mask is not None:
        weight = weight * mask.reshape(-1)
    count = (weight != 0).sum()
    return (per * weight).sum() / count.clamp(min=1)


def slice_(x, a):
    index = [slice(None)] * x.dim()
    index[a["dim"]] = slice(a["start"], a["stop"], a["step"])
    return x[tuple(index)]


OPS = {
    "add": lambda x, a: x[0] + x[1],
    "sub": lambda x, a: x[0] - x[1],
    "mul": lambda x, a: x[0] * x[1],
    "div": lambda x, a: x[0] / x[1],
    "square": lambda x, a: x[0] * x[0],
    "add_scalar": lambda x, a: x[0] + a["s"],
    "mul_scalar": lambda x, a: x[0] * a["s"],
    "rsub_scalar": lambda x, a: a["s"] - x[0],
    "rdiv_scalar": lambda x, a: a["s"] / x[0],
    "pow_scalar": lambda x, a: x[0] ** a["p"],
    "neg": lambda x, a: -x[0],
    "exp": lambda x, a: torch.exp(x[0]),
    "log": lambda x, a: torch.log(x[0]),
    "sqrt": lambda x, a: torch.sqrt(x[0]),
    "tanh": lambda x, a: torch.tanh(x[0]),
    "sigmoid": lambda x, a: torch.sigmoid(x[0]),
    "gelu": lambda x, a: F.gelu(x[0], approximate="tanh"),
    "relu": lambda x, a: F.relu(x[0]),
    "clamp": lambda x, a: torch.clamp(x[0], a["lo"], a["hi"]),
    "masked_fill": lambda x, a: x[0].masked_fill(x[1] != 0, a["value"]),
    "sum": lambda x, a: x[0].sum(a["dim"], keepdim=a["keepdim"]),
    "sum_all": lambda x, a: x[0].sum(),
    "mean": lambda x, a: x[0].mean(a["dim"], keepdim=a["keepdim"]),
    "mean_all": lambda x, a: x[0].mean(),
    "max": lambda x, a: x[0].max(a["dim"], keepdim=a["keepdim"]).values,
    "max_all": lambda x, a: x[0].max(),
    "view": lambda x, a: x[0].reshape(a["shape"]),
    "permute": lambda x, a: x[0].permute(a["dims"]),
    "slice": lambda x, a: slice_(x[0], a),
    "select": lambda x, a: x[0].select(a["dim"], a["index"]),
    "expand": lambda x, a: x[0].expand(a["shape"]),
    "contiguous": lambda x, a: x[0].transpose(0, 1).contiguous(),
    "clone": lambda x, a: x[0].clone(),
    "to_dtype": lambda x, a: x[0].double().float(),
    "matmul": lambda x, a: torch.matmul(x[0], x[1]),
    "matmul_tt": lambda x, a: x[0].t() @ x[1].t(),
    "softmax": lambda x, a: torch.softmax(x[0], a["dim"]),
    "log_softmax": lambda x, a: torch.log_softmax(x[0], a["dim"]),
    "layer_norm": lambda x, a: F.layer_norm(x[0], (x[0].shape[-1],), x[1], x[2], a["eps"]),
    "embedding": lambda x, a: F.embedding(x[1].long(), x[0]),
    "cross_entropy": lambda x, a: cross_entropy(x[0], x[1], x[2] if len(x) > 2 else None, a),
    "attention": lambda x, a: attention(x[0], x[1], x[2], a),
    "dropout": lambda x, a: x[0] * x[1] / (1 - a["p"]),
    "cat": lambda x, a: torch.cat(x, a["dim"]),
    "gather": lambda x, a: torch.gather(x[0], a["dim"], x[1].long()),
    "index_select": lambda x, a: torch.index_select(x[0], a["dim"], x[1].long()),
}

DTYPES = {"f32": torch.float32, "f64": torch.float64, "i32": torch.int32}


def run(case):
    inputs = []
    for spec in case["inputs"]:
        t = torch.tensor(spec["data"], dtype=DTYPES[spec["dtype"]]).reshape(spec["shape"])
        if spec.get("requires_grad"):
            t.requires_grad_(True)
        inputs.append(t)
    out = OPS[case["op"]](inputs, case.get("args", {}))
    result = {"name": case["name"], "shape": list(out.shape), "out": out.detach().reshape(-1).tolist()}
    if out.requires_grad:
        grad = torch.tensor(case["grad"], dtype=out.dtype).reshape(out.shape)
        out.backward(grad)
        result["grads"] = [t.grad.reshape(-1).tolist() if t.grad is not None else None for t in inputs]
    return result


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run(c) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
