#!/usr/bin/python3
"""The PyTorch side of tools/bench/bench_core.lua: the same GPT-style block (pre-LN causal
attention + GELU MLP), forward and backward, eager mode; prints the best of 10 timings.
usage: bench_block_torch.py B T C H THREADS"""
import math
import sys
import time

import torch
import torch.nn.functional as F

B, T, C, H, threads = (int(v) for v in sys.argv[1:6])
torch.set_num_threads(threads)
torch.manual_seed(0)


def p(*shape):
    return (torch.randn(*shape) * 0.02).requires_grad_()


ln1 = (torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True))
ln2 = (torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True))
wqkv, bqkv, wo, bo = p(3 * C, C), torch.zeros(3 * C, requires_grad=True), p(C, C), torch.zeros(C, requires_grad=True)
wfc, bfc, wproj, bproj = p(4 * C, C), torch.zeros(4 * C, requires_grad=True), p(C, 4 * C), torch.zeros(C, requires_grad=True)
x = torch.randn(B, T, C, requires_grad=True)
mask = torch.ones(T, T, dtype=torch.bool).triu(1)


def block():
    qkv = F.linear(F.layer_norm(x, (C,), *ln1), wqkv, bqkv).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
    att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    h = x + F.linear(y, wo, bo)
    out = h + F.linear(F.gelu(F.linear(F.layer_norm(h, (C,), *ln2), wfc, bfc), approximate="tanh"), wproj, bproj)
    out.sum().backward()


block()
best = math.inf
for _ in range(10):
    t0 = time.perf_counter()
    block()
    best = min(best, time.perf_counter() - t0)
print(f"seconds={best}")
