-- bench_train.lua: training throughput of mtt against PyTorch eager, the same GPT (GPT-2
-- layout, GPT-2 init, no dropout), the same optimizer (AdamW, decay on 2-D weights, clipping
-- at 1), batch, sequence length and thread count. Each side runs in its own process, so that
-- each peak RSS is its own; both print tokens/s over the timed steps (after warm-up steps).
-- Not a test: on a shared machine only ratios measured in the same run mean anything.
--
--   mtt run tools/bench/bench_train.lua [a|b|all] [threads] [steps] [repeats]
--     a: vocab 512, 4 layers, width 256, 4 heads, seq 128, batch 16 (the default)
--     b: GPT-2 small: vocab 50257, 12 layers, 768, 12 heads, seq 64, batch 4
--
-- Each side runs `repeats` times (default 2), alternating, and the best tokens/s of each is
-- reported, so that a burst of load from other processes hits both alike and is filtered out.
-- mtt's side is mtt.train itself (run_dir = false) over random tokens; PyTorch's is
-- tools/bench/bench_train_torch.py, run with OMP_WAIT_POLICY=passive and the OPENBLAS_CORETYPE
-- that the mtt command chose, if it chose one (as tools/bench/bench_core.lua does).
local ffi = require 'ffi'
local mtt = require 'mtt'

local CONFIGS = {
  a = { vocab = 512, layers = 4, width = 256, heads = 4, seq = 128, batch = 16, warmup = 2, steps = 10 },
  b = { vocab = 50257, layers = 12, width = 768, heads = 12, seq = 64, batch = 4, warmup = 1, steps = 4 },
}

local function peak_rss_mb()
  for line in io.lines('/proc/self/status') do
    local kb = line:match('^VmHWM:%s*(%d+)')
    if kb then return tonumber(kb) / 1024 end
  end
  return 0 / 0
end

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_train_timespec;
int bench_train_clock_gettime(int clk, bench_train_timespec *ts) __asm__("clock_gettime");
long bench_train_readlink(const char *path, char *buf, size_t n) __asm__("readlink");
]])
local ts = ffi.new('bench_train_timespec')
local function now()
  ffi.C.bench_train_clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- ---- one side: `mtt run bench_train.lua --mtt-side V L C H T B THREADS WARMUP STEPS` ----
if arg[1] == '--mtt-side' then
  local V, L, C, H, T, B, threads, warmup, steps = unpack(arg, 2, 10)
  V, L, C, H, T, B = tonumber(V), tonumber(L), tonumber(C), tonumber(H), tonumber(T), tonumber(B)
  threads, warmup, steps = tonumber(threads), tonumber(warmup), tonumber(steps)
  mtt.threads(threads)
  mtt.manual_seed(0)
  local model = mtt.nn.GPT { vocab_size = V, n_positions = T, n_embd = C, n_layer = L, n_head = H,
    resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
  local data = mtt.randint(0, V, { warmup + steps, B, T + 1 }, { generator = mtt.Generator(1) })
  local i = 0
  local source = {
    batch = function()
      i = i + 1
      local d = data:select(1, i)
      return d:narrow(2, 1, T):contiguous(), d:narrow(2, 2, T):contiguous()
    end,
  }
  local t0
  local res = mtt.train { model = model, data = source, steps = warmup + steps, batch_size = B, lr = 3e-4,
    schedule = 'constant', weight_decay = 0.1, betas = { 0.9, 0.95 }, eps = 1e-8, clip = 1.0, run_dir = false,
    progress = false, on_step = function(info) if info.step == warmup then t0 = now() end end }
  local seconds = now() - t0
  print(string.format('tokens_per_s=%.17g seconds=%.6f peak_rss_mb=%.1f loss=%.6f params=%d', B * T * steps / seconds,
    seconds, peak_rss_mb(), res.loss, model:num_parameters()))
  return
end

-- ---- the driver ----
local which = arg[1] or 'a'
local threads = tonumber(arg[2]) or mtt.threads()
local steps_override = tonumber(arg[3])
local repeats = tonumber(arg[4]) or 2
local names = which == 'all' and { 'a', 'b' } or { which }
for _, n in ipairs(names) do
  if not CONFIGS[n] then error('bench_train: unknown config ' .. n .. ' (accepted: a, b, all)') end
end

local function self_exe()
  local buf = ffi.new('char[4096]')
  local n = ffi.C.bench_train_readlink('/proc/self/exe', buf, 4096)
  if n <= 0 then error('bench_train: cannot read /proc/self/exe') end
  return ffi.string(buf, n)
end

local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('*a')
  p:close()
  local r = {}
  for k, v in out:gmatch('([%w_]+)=(%S+)') do r[k] = tonumber(v) end
  if not r.tokens_per_s then error('bench_train: a side failed:\n' .. cmd .. '\n' .. out) end
  return r
end

local coretype = os.getenv('OPENBLAS_CORETYPE')
local env = 'OMP_WAIT_POLICY=passive' .. (coretype and (' OPENBLAS_CORETYPE=' .. coretype) or '')
print(string.format('mtt %s, %d threads, %s', mtt.version, threads, mtt.blas_info()))
print(string.format('PyTorch runs with %s', env))
for _, n in ipairs(names) do
  local c = CONFIGS[n]
  local steps = steps_override or c.steps
  local args = string.format('%d %d %d %d %d %d %d %d %d', c.vocab, c.layers, c.width, c.heads, c.seq, c.batch,
    threads, c.warmup, steps)
  local script = mtt.root .. '/tools/bench/bench_train.lua'
  local m, t
  local function best(a, b) return (a == nil or b.tokens_per_s > a.tokens_per_s) and b or a end
  for _ = 1, repeats do
    m = best(m, run(string.format("'%s' run '%s' --mtt-side %s", self_exe(), script, args)))
    t = best(t, run(string.format("%s /usr/bin/python3 '%s/tools/bench/bench_train_torch.py' %s", env, mtt.root, args)))
  end
  print(string.format('(%s) vocab %d, %d layers, width %d, %d heads, seq %d, batch %d: %.1fM params, %d timed steps, ' ..
    'best of %d', n, c.vocab, c.layers, c.width, c.heads, c.seq, c.batch, m.params / 1e6, steps, repeats))
  print(string.format('    mtt     %8.0f tokens/s  peak RSS %6.0f MB  (last loss %.4f)', m.tokens_per_s, m.peak_rss_mb, m.loss))
  print(string.format('    PyTorch %8.0f tokens/s  peak RSS %6.0f MB  (last loss %.4f)', t.tokens_per_s, t.peak_rss_mb, t.loss))
  print(string.format('    speed ratio mtt/PyTorch %.2f, memory ratio %.2f', m.tokens_per_s / t.tokens_per_s,
    m.peak_rss_mb / t.peak_rss_mb))
end
