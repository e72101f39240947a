-- bench_core.lua: mtt against its peers, side by side in one run (not a test: timings on a
-- shared machine are noisy, so only ratios measured in the same run mean anything).
--   1. sgemm 1024^3 GFLOP/s through mtt's Lua API vs cblas_sgemm called directly on the very
--      OpenBLAS library mtt loaded (same process, same settings). Target ratio >= 0.95.
--   2. a GPT-style block (pre-LN attention + GELU MLP) forward+backward vs PyTorch eager on the
--      same shapes and thread count (tools/bench/bench_block_torch.py, run with
--      OPENBLAS_CORETYPE and OMP_WAIT_POLICY=passive, its best settings here).
-- usage: mtt run tools/bench/bench_core.lua [threads]
local ffi = require 'ffi'
local mtt = require 'mtt'
local F = mtt.F

local threads = tonumber(arg and arg[1]) or mtt.threads()
mtt.threads(threads)

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new('bench_timespec')
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Best time of `reps` runs of fn (after one warm-up run).
local function best_time(reps, fn)
  fn()
  local best = math.huge
  for _ = 1, reps do
    local t0 = now()
    fn()
    best = math.min(best, now() - t0)
  end
  return best
end

-- The OpenBLAS that libmtt loaded, found in this process's memory map.
local function loaded_openblas()
  for line in io.lines('/proc/self/maps') do
    local path = line:match('(/%S*libopenblas[^%s]*%.so[^%s]*)')
    if path then return path end
  end
  error('bench: OpenBLAS is not loaded in this process')
end

ffi.cdef [[
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
]]
local blas_path = loaded_openblas()
local blas = ffi.load(blas_path)

print(string.format('mtt %s, %d threads, %s', mtt.version, threads, mtt.blas_info()))
print(string.format('OPENBLAS_CORETYPE=%s OMP_WAIT_POLICY=%s', os.getenv('OPENBLAS_CORETYPE') or '(unset)',
  os.getenv('OMP_WAIT_POLICY') or '(unset)'))

-- 1. sgemm
local n = 1024
local a, b = mtt.randn(n, n), mtt.randn(n, n)
local c = mtt.zeros(n, n)
local pa, pb, pc = ffi.cast('float *', a:data_ptr()), ffi.cast('float *', b:data_ptr()), ffi.cast('float *', c:data_ptr())
local flops = 2 * n * n * n
local t_blas, t_mtt = math.huge, math.huge
for _ = 1, 3 do -- interleave, so that machine noise hits both alike
  t_blas = math.min(t_blas, best_time(5, function() blas.cblas_sgemm(101, 111, 111, n, n, n, 1, pa, n, pb, n, 0, pc, n) end))
  t_mtt = math.min(t_mtt, best_time(5, function() return mtt.matmul(a, b) end))
end
print(string.format('sgemm %d^3: OpenBLAS direct %.1f GFLOP/s, mtt.matmul %.1f GFLOP/s, ratio %.3f (target >= 0.95)',
  n, flops / t_blas * 1e-9, flops / t_mtt * 1e-9, t_blas / t_mtt))

-- 2. GPT-style block, forward + backward
local B, T, C, H = 16, 128, 256, 4
local gen = mtt.Generator(0)
local function p(...) return (mtt.randn({ ... }, { generator = gen }) * 0.02):detach():requires_grad() end
local w = {
  ln1w = mtt.ones(C):requires_grad(), ln1b = mtt.zeros(C):requires_grad(),
  wqkv = p(3 * C, C), bqkv = mtt.zeros(3 * C):requires_grad(), wo = p(C, C), bo = mtt.zeros(C):requires_grad(),
  ln2w = mtt.ones(C):requires_grad(), ln2b = mtt.zeros(C):requires_grad(),
  wfc = p(4 * C, C), bfc = mtt.zeros(4 * C):requires_grad(), wproj = p(C, 4 * C), bproj = mtt.zeros(C):requires_grad(),
}
local x = mtt.randn({ B, T, C }, { generator = gen }):requires_grad()
local function block()
  local qkv = F.linear(F.layer_norm(x, w.ln1w, w.ln1b), w.wqkv, w.bqkv):view(B, T, 3, H, C / H):permute(3, 1, 4, 2, 5)
  local y = F.attention(qkv:select(1, 1), qkv:select(1, 2), qkv:select(1, 3), { causal = true })
  local h = x + F.linear(y:transpose(2, 3):reshape(B, T, C), w.wo, w.bo)
  local out = h + F.linear(F.linear(F.layer_norm(h, w.ln2w, w.ln2b), w.wfc, w.bfc):gelu(), w.wproj, w.bproj)
  out:sum():backward()
end
local t_block = best_time(10, block)

-- PyTorch gets the OpenBLAS core mtt chose (set by the mtt command only where OpenBLAS does not
-- recognize the CPU) and passive OpenMP waits, which doubled its speed here.
local coretype = os.getenv('OPENBLAS_CORETYPE')
local cmd = string.format('OMP_WAIT_POLICY=passive %s /usr/bin/python3 %s/tools/bench/bench_block_torch.py %d %d %d %d %d',
  coretype and ('OPENBLAS_CORETYPE=' .. coretype) or '', mtt.root, B, T, C, H, threads)
local out = io.popen(cmd):read('*a')
local t_torch = tonumber(out:match('seconds=(%S+)'))
if not t_torch then error('bench: the PyTorch side failed:\n' .. out) end
print(string.format('GPT block fwd+bwd B%d T%d C%d H%d: mtt %.2f ms, PyTorch %.2f ms, speed ratio (torch/mtt) %.2f',
  B, T, C, H, t_block * 1e3, t_torch * 1e3, t_torch / t_block))
