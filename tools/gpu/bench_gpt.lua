-- tools/gpu/bench_gpt.lua: training throughput of GPT-2 small in mtt on one device (the mtt side
-- of the PyTorch comparison; tools/gpu/bench_gpt_torch.py is the other side).
--   mtt run tools/gpu/bench_gpt.lua [batch=8] [block=1024] [precision=medium] [steps=20]
--                                   [warmup=5] [clip=0] [layers=12] [embd=768] [vocab=50257]
--                                   [gc_mb=4096] [device=cuda]
-- precision: highest (f32), high (TF32 products), medium (bf16 products and attention, f32
-- weights and optimizer state). A step is zero_grad, forward, backward, (clip), AdamW step on
-- random tokens; the clock runs from the first timed step to the device finishing the last.
-- Prints one line of JSON (tokens/s, ms per step, MFU when the device's peak is known).
-- gc_mb: Lua frees a step's tensors when it collects, and mtt.tensor collects after every
-- gc_every bytes of new tensors (256 MB by default); a GPT-2 step makes about 16 GB of them, and
-- a full collection costs about a millisecond, so the default would spend tens of ms per step
-- collecting. 4 GB keeps that to a few collections per step, for a few GB more device memory.
package.path = 'tools/gpu/?.lua;' .. package.path
local ffi = require 'ffi'
local mtt = require 'mtt'
local C = require('mtt.ffi').C
local GPT = require 'gpt'

local o = require('gpu_util').options('bench_gpt', { batch = 8, block = 1024, precision = 'medium', steps = 20,
  warmup = 5, clip = 0, layers = 12, embd = 768, vocab = 50257, device = 'cuda', gc_mb = 4096 },
  { 'batch', 'block', 'precision', 'steps', 'warmup', 'clip', 'layers', 'embd', 'vocab', 'gc_mb', 'device' })
local levels = { highest = 0, high = 1, medium = 2 }
assert(levels[o.precision], 'bench_gpt: precision must be highest, high or medium')
C.mtt_set_float32_matmul_precision(levels[o.precision])
require('mtt.tensor').gc_every = o.gc_mb * 2 ^ 20

-- dense bf16 (or TF32) peak of the device, for MFU
local info = o.device == 'cuda' and ffi.string(C.mtt_cuda_device_info()) or 'cpu'
local function peak_flops()
  local bf16 = (info:find('H100') and not info:find('PCIe') and 989.4e12) or (info:find('H100') and 756e12) or
               (info:find('H200') and 989.4e12) or (info:find('A100') and 312e12) or nil
  if not bf16 then return nil end
  return o.precision == 'medium' and bf16 or o.precision == 'high' and bf16 / 2 or nil
end

local model = GPT.new({ vocab_size = o.vocab, n_positions = o.block, n_embd = o.embd, n_layer = o.layers,
  n_head = o.embd / 64, device = o.device, seed = 0 })
local opt = mtt.optim.AdamW(model.params, { lr = 6e-4, weight_decay = 0.1, betas = { 0.9, 0.95 } })
local g = mtt.Generator(1)
local idx = mtt.randint(0, o.vocab, { o.batch, o.block }, { generator = g, device = o.device })
local tgt = mtt.randint(0, o.vocab, { o.batch, o.block }, { generator = g, device = o.device })

local function sync()
  if o.device == 'cuda' then assert(C.mtt_cuda_synchronize() == 0, ffi.string(C.mtt_last_error())) end
end

local last
local function step()
  opt:zero_grad()
  local loss = model:loss(idx, tgt)
  loss:backward()
  if o.clip > 0 then mtt.nn.utils.clip_grad_norm_(model.params, o.clip) end
  opt:step()
  last = loss
end

for _ = 1, o.warmup do step() end
sync()
collectgarbage()
local clock = ffi.new('struct { int64_t s, ns; }[1]')
ffi.cdef [[ int clock_gettime(int clk, void *ts); ]]
local function now()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock[0].s) + tonumber(clock[0].ns) * 1e-9
end
local t0 = now()
local waits0 = o.device == 'cuda' and mtt.cuda.host_waits() or 0
for _ = 1, o.steps do step() end
sync()
local dt = now() - t0
-- host waits for the device per step (index checks, clipping, reads): each one drains the queue
local waits = o.device == 'cuda' and (mtt.cuda.host_waits() - waits0 - 1) / o.steps or 0
local loss = last:to('cpu'):item()
local tokens = o.batch * o.block * o.steps
local tps = tokens / dt
local peak = peak_flops()
local flops = model:flops_per_token(o.block)
local stats = ffi.new('int64_t[4]')
local peak_mem = o.device == 'cuda' and C.mtt_cuda_memory_stats(stats) == 0 and tonumber(stats[2]) or 0
print(string.format('{"impl": "mtt", "device": "%s", "precision": "%s", "batch": %d, "block": %d, "params": %d, ' ..
  '"steps": %d, "ms_per_step": %.2f, "tokens_per_s": %.0f, "flops_per_token": %.4g, "mfu": %s, "clip": %s, ' ..
  '"loss": %.4f, "peak_mem_gib": %.2f, "bf16_gemm": "%s", "gc_mb": %d, "host_waits_per_step": %.1f}', info:gsub('"', "'"), o.precision, o.batch, o.block,
  model:num_parameters(), o.steps, 1000 * dt / o.steps, tps, flops, peak and string.format('%.4f', tps * flops / peak) or 'null',
  tostring(o.clip), loss, peak_mem / 2 ^ 30, os.getenv('MTT_CUDA_BF16_GEMM') or 'convert', o.gc_mb, waits))
