"""tools/gpu/bench_gpt_torch.py: training throughput of GPT-2 small in PyTorch eager on one GPU,
the reference side of tools/gpu/bench_gpt.lua (same model, sizes, optimizer and step).

    python3 tools/gpu/bench_gpt_torch.py [--batch 8] [--block 1024] [--precision bf16]
                                         [--steps 20] [--warmup 5] [--clip 0]

The strongest eager setup: bf16 autocast (f32 weights and AdamW state), fused AdamW,
F.scaled_dot_product_attention (flash attention), TF32 allowed. Prints one line of JSON.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, L):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        for lin in (self.c_attn, self.c_fc):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        for lin in (self.c_proj, self.mlp_proj):
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * L))
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0 (a smoke test on a build machine): the same function, unfused
            s = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            y = s.softmax(-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, C, L, H):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.h = nn.ModuleList([Block(C, H, L) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied lm_head
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def peak_flops(name, precision):
    bf16 = None
    if "H100" in name:
        bf16 = 756e12 if "PCIe" in name else 989.4e12
    elif "H200" in name:
        bf16 = 989.4e12
    elif "A100" in name:
        bf16 = 312e12
    if bf16 is None or precision == "f32":
        return None
    return bf16 if precision == "bf16" else bf16 / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--precision", choices=["bf16", "tf32", "f32"], default="bf16")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--clip", type=float, default=0)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of this script, not a benchmark")
    a = ap.parse_args()

    torch.manual_seed(0)
    dev = a.device
    cuda = dev == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = a.precision != "f32"
    torch.backends.cudnn.allow_tf32 = a.precision != "f32"
    model = GPT(a.vocab, a.block, a.embd, a.layers, a.embd // 64).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95), **({"fused": True} if cuda else {}))
    idx = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)
    tgt = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)

    import contextlib
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and a.precision == "bf16" \
        else contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = model(idx, tgt)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        return loss

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    dt = time.perf_counter() - t0
    C, L, V, T = a.embd, a.layers, a.vocab, a.block
    flops = 6 * (L * 12 * C * C + V * C) + 6 * L * T * C
    tps = a.batch * a.block * a.steps / dt
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_flops(name, a.precision)
    print(json.dumps({
        "impl": "torch", "torch": torch.__version__, "device": name, "precision": a.precision, "batch": a.batch,
        "block": a.block, "params": sum(p.numel() for p in model.parameters()), "steps": a.steps,
        "ms_per_step": round(1000 * dt / a.steps, 2), "tokens_per_s": round(tps), "flops_per_token": flops,
        "mfu": round(tps * flops / peak, 4) if peak else None, "clip": a.clip, "loss": round(loss.item(), 4),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}))


if __name__ == "__main__":
    main()
