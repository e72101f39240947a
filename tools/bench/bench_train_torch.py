#!/usr/bin/python3
"""The PyTorch side of tools/bench/bench_train.lua: training steps of a GPT with GPT-2's
layout (Conv1D weights [in, out], learned positions, pre-LN blocks, tanh GELU, tied head),
initialized as GPT-2 (N(0, 0.02), residual projections / sqrt(2 n_layer)), AdamW with decay on
2-D weights only, global-norm clipping at 1, eager mode, no dropout. Prints tokens/s over the
timed steps and the process's peak RSS.
usage: bench_train_torch.py VOCAB N_LAYER N_EMBD N_HEAD SEQ BATCH THREADS WARMUP STEPS"""
import math
import sys
import time

import torch
import torch.nn.functional as F

V, L, C, H, T, B, threads, warmup, steps = (int(v) for v in sys.argv[1:10])
torch.set_num_threads(threads)
torch.manual_seed(0)
std, proj_std = 0.02, 0.02 / math.sqrt(2 * L)


def param(*shape, s=None):
    t = torch.randn(*shape) * s if s is not None else torch.zeros(*shape)
    return t.requires_grad_()


def ones(n):
    return torch.ones(n).requires_grad_()


wte, wpe = param(V, C, s=std), param(T, C, s=std)
blocks = []
for _ in range(L):
    blocks.append(dict(
        ln1w=ones(C), ln1b=param(C),
        attn_w=param(C, 3 * C, s=std), attn_b=param(3 * C),
        aproj_w=param(C, C, s=proj_std), aproj_b=param(C),
        ln2w=ones(C), ln2b=param(C),
        fc_w=param(C, 4 * C, s=std), fc_b=param(4 * C),
        mproj_w=param(4 * C, C, s=proj_std), mproj_b=param(C)))
lnfw, lnfb = ones(C), param(C)
params = [wte, wpe] + [t for b in blocks for t in b.values()] + [lnfw, lnfb]
mask = torch.ones(T, T, dtype=torch.bool).triu(1)
pos = torch.arange(T)


def conv1d(x, w, b):  # GPT-2's Conv1D: x @ w + b with w [in, out]
    return torch.addmm(b, x.view(-1, x.size(-1)), w).view(*x.shape[:-1], w.size(1))


def forward(idx, targets):
    x = F.embedding(idx, wte) + F.embedding(pos, wpe)
    D = C // H
    for b in blocks:
        h = F.layer_norm(x, (C,), b["ln1w"], b["ln1b"])
        q, k, v = conv1d(h, b["attn_w"], b["attn_b"]).split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + conv1d(y, b["aproj_w"], b["aproj_b"])
        h = F.layer_norm(x, (C,), b["ln2w"], b["ln2b"])
        x = x + conv1d(F.gelu(conv1d(h, b["fc_w"], b["fc_b"]), approximate="tanh"), b["mproj_w"], b["mproj_b"])
    x = F.layer_norm(x, (C,), lnfw, lnfb)
    logits = x @ wte.t()
    return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))


decay = [p for p in params if p.dim() >= 2]
no_decay = [p for p in params if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
data = torch.randint(0, V, (warmup + steps, B, T + 1))


def step(i):
    loss = forward(data[i, :, :T], data[i, :, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


for i in range(warmup):
    step(i)
t0 = time.perf_counter()
for i in range(warmup, warmup + steps):
    last = step(i)
seconds = time.perf_counter() - t0


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


print(f"tokens_per_s={B * T * steps / seconds} seconds={seconds} peak_rss_mb={peak_rss_mb()} "
      f"loss={last} params={sum(p.numel() for p in params)}")
