-- test_cuda.lua: the cuda backend against the cpu backend (the reference).
--
-- Part 1 runs everywhere: device selection and its errors, the precision setting, the C
-- functions of mtt.h's cuda section. Part 2 needs a device and prints "skipped: no CUDA
-- device" without one; it runs on a real GPU and, in CI, on the emulated device of
-- libmtt_cudaemu.so (ctest's lua_test_cuda_emulated: the same kernel source on the CPU).
-- Part 2: every op of op_cases.lua forward and backward, larger shapes that cross the kernels'
-- tile and chunk boundaries, transfers, random streams, optimizers, in-place ops, errors,
-- memory, determinism and the faster precisions.
--
-- Error measure: the normalized error |a - b|_2 / |b|_2 of the cuda result a against the cpu
-- result b (both read as f64), or the largest absolute difference where b is all zeros. A NaN
-- where the cpu has none fails. Thresholds per op, forward and gradients alike (OP_TOL below):
--   f32: 1e-6 for ops that round each element once (views, copies, elementwise, dropout, cat,
--   gather, index_select, max); 1e-5 for ops that sum in a different order on the two devices
--   (sum, mean, matmul, softmax, log_softmax, layer_norm, cross_entropy, attention, embedding);
--   f64: 1e-12 for every op. Exactly equal: integer results (indices, comparisons, argmax,
--   top-k), embedding and index_select gradients (both devices add in the same order), uniform
--   and integer random draws; normal draws within 1e-6 (double libm differs in the last ulp).
--   Faster precisions: TF32 products 2e-3, bf16 products and attention (MEDIUM) 1e-2 (each
--   about 4x what the emulator measures, whose rounding models the tensor cores').
-- Run: mtt run tests/lua/test_cuda.lua  (MTT_LIBRARY=build/libmtt_cudaemu.so for the emulator;
-- MTT_CUDA_EXPECT_DEVICE=1 turns a missing device into a failure, as on the GPU machine)
package.path = 'tests/lua/?.lua;' .. package.path
local ffi = require 'ffi'
local mtt = require 'mtt'
local C = require('mtt.ffi').C
local F = mtt.F

local TOL = { f64 = 1e-12, f32 = 1e-5, tf32 = 2e-3, bf16 = 1e-2, normal_draw = 1e-6 }
-- f32 thresholds of the ops that round each element once (every other op: TOL.f32)
local OP_TOL_F32 = {}
for _, op in ipairs({ 'view', 'permute', 'slice', 'select', 'expand', 'contiguous', 'clone', 'to_dtype', 'add', 'sub',
  'mul', 'div', 'add_scalar', 'mul_scalar', 'rsub_scalar', 'rdiv_scalar', 'pow_scalar', 'neg', 'exp', 'log', 'sqrt',
  'tanh', 'sigmoid', 'gelu', 'relu', 'clamp', 'masked_fill', 'max', 'max_all', 'dropout', 'cat', 'gather',
  'index_select' }) do
  OP_TOL_F32[op] = 1e-6
end
local function op_tol(op, dtype) return dtype == 'f64' and TOL.f64 or OP_TOL_F32[op] or TOL.f32 end
local checks, failures = 0, {}

local function fail(what, msg)
  failures[#failures + 1] = what .. ': ' .. msg
  print('FAIL ' .. what .. ': ' .. msg)
end

local function check(cond, what, msg)
  checks = checks + 1
  if not cond then fail(what, msg or 'check failed') end
  return cond
end

-- f(...) must raise an error whose message contains every plain-text pattern.
local function expect_error(what, patterns, f, ...)
  checks = checks + 1
  local ok, err = pcall(f, ...)
  if ok then return fail(what, 'no error raised') end
  err = tostring(err)
  for _, p in ipairs(patterns) do
    if not err:find(p, 1, true) then return fail(what, string.format('message "%s" lacks "%s"', err, p)) end
  end
  if os.getenv('VERBOSE') then print(string.format('  %-30s %s', what, err)) end
end

-- A tensor's values as a contiguous f64 cpu tensor and a pointer into it.
local function host_f64(t)
  local h = t:detach():to('cpu')
  if h.dtype ~= 'f64' then h = h:to('f64') end
  h = h:contiguous()
  return h, ffi.cast('double *', h:data_ptr())
end

-- Normalized error of a (any device) against the reference b (cpu).
local function rel_err(a, b)
  if a:numel() ~= b:numel() then return math.huge end
  local ha, pa = host_f64(a)
  local hb, pb = host_f64(b)
  local num, den, maxdiff = 0, 0, 0
  for i = 0, b:numel() - 1 do
    local x, y = pa[i], pb[i]
    if x ~= x or y ~= y then
      if (x ~= x) ~= (y ~= y) then return math.huge end
    elseif x ~= y then
      if math.abs(x) == math.huge or math.abs(y) == math.huge then return math.huge end
      num = num + (x - y) ^ 2
      maxdiff = math.max(maxdiff, math.abs(x - y))
    end
    if y == y and math.abs(y) ~= math.huge then den = den + y * y end
  end
  local _ = ha, hb
  if den == 0 then return maxdiff end
  return math.sqrt(num / den)
end

local function same_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  return true
end

-- a (cuda) matches b (cpu) within tol (0: exactly).
local function close(what, a, b, tol)
  checks = checks + 1
  if not same_shape(a, b) then
    return fail(what, string.format('shape %s vs %s', table.concat(a:shape(), 'x'), table.concat(b:shape(), 'x')))
  end
  if a.dtype ~= b.dtype then return fail(what, 'dtype ' .. a.dtype .. ' vs ' .. b.dtype) end
  local e = rel_err(a, b)
  if e > tol then return fail(what, string.format('normalized error %.3g > %.0e', e, tol)) end
  if os.getenv('VERBOSE') then print(string.format('  %-40s err %.2e (tol %.0e)', what, e, tol)) end
  return e
end

local function to_cuda(t)
  local c = t:detach():to('cuda')
  if t.grad_required then c:requires_grad() end
  return c
end

-- ---------------------------------------------------------------------------------------------
-- Part 1: everywhere
-- ---------------------------------------------------------------------------------------------
local available = mtt.cuda.available()
check(type(available) == 'boolean', 'available', 'mtt.cuda.available() is not a boolean')
check((C.mtt_cuda_device_count() > 0) == available, 'device_count', 'count and available() disagree')
local info = ffi.string(C.mtt_cuda_device_info())
check(#info > 0, 'device_info', 'empty description')
print('device: ' .. info .. (C.mtt_cuda_is_emulated() ~= 0 and ' [emulated: kernels run on the CPU]' or ''))

-- the precision setting (the cpu ignores it: same bits in every mode)
check(C.mtt_get_float32_matmul_precision() == 0, 'precision default', 'HIGHEST is not the default')
local a, b = mtt.randn(33, 17, { generator = mtt.Generator(1) }), mtt.randn(17, 9, { generator = mtt.Generator(2) })
local ref = a:matmul(b)
check(C.mtt_set_float32_matmul_precision(2) == 0 and C.mtt_get_float32_matmul_precision() == 2, 'precision set')
check(rel_err(a:matmul(b), ref) == 0, 'precision on cpu', 'the cpu result changed under MEDIUM')
check(C.mtt_set_float32_matmul_precision(7) ~= 0, 'precision range', 'precision 7 accepted')
check(ffi.string(C.mtt_last_error()):find('set_float32_matmul_precision', 1, true) ~= nil, 'precision message')
C.mtt_set_float32_matmul_precision(0)

-- ---- mtt.device: one setting for device and precision (lua/mtt/device.lua) ----
do
  local D = mtt.device
  check(D == require('mtt.device'), 'mtt.device registered')
  -- torch's names for the core setting
  mtt.set_float32_matmul_precision('high')
  check(mtt.get_float32_matmul_precision() == 'high' and C.mtt_get_float32_matmul_precision() == 1,
    'set_float32_matmul_precision high')
  mtt.set_float32_matmul_precision('highest')
  check(C.mtt_get_float32_matmul_precision() == 0, 'set_float32_matmul_precision highest')
  expect_error('precision name', { 'set_float32_matmul_precision', "'fast'", 'highest, high, medium' },
    mtt.set_float32_matmul_precision, 'fast')
  -- setup on the cpu: f32 as asked; tf32/bf16 fall back to f32, visibly (returned, not silent)
  local cfg = D.setup({ device = 'cpu', precision = 'f32' })
  check(cfg.device == 'cpu' and cfg.precision == 'f32' and cfg.fallback == nil and cfg.matmul_precision == 'highest',
    'setup cpu f32', 'got ' .. tostring(cfg.device) .. ' ' .. tostring(cfg.precision))
  for _, p in ipairs({ 'tf32', 'bf16' }) do
    C.mtt_set_float32_matmul_precision(2) -- setup must put it back to what it returns
    local c = D.setup({ device = 'cpu', precision = p, quiet = true })
    check(c.device == 'cpu' and c.precision == 'f32' and c.requested.precision == p, 'setup cpu ' .. p .. ' falls back')
    check(type(c.fallback) == 'string' and c.fallback:find(p, 1, true) and c.fallback:find('f32', 1, true),
      'setup cpu ' .. p .. ' says so', tostring(c.fallback))
    check(C.mtt_get_float32_matmul_precision() == 0, 'setup cpu ' .. p .. ' sets f32')
  end
  check(D.setup().device == 'cpu' and D.setup().precision == 'f32', 'setup defaults')
  local auto = D.setup({ device = 'auto', precision = 'bf16', quiet = true })
  check(auto.device == (available and 'cuda' or 'cpu'), 'setup auto', 'picked ' .. auto.device)
  check(auto.precision == (available and 'bf16' or 'f32'), 'setup auto precision', auto.precision)
  check(C.mtt_get_float32_matmul_precision() == (available and 2 or 0), 'setup auto sets the core')
  expect_error('setup device name', { 'mtt.device.setup', "'gpu'", 'cpu, cuda, auto' }, D.setup, { device = 'gpu' })
  expect_error('setup precision name', { 'mtt.device.setup', "'fp16'", 'f32, tf32, bf16' }, D.setup, { precision = 'fp16' })
  expect_error('setup option name', { 'mtt.device.setup', "unknown option 'precison'" }, D.setup, { precison = 'bf16' })
  if available then
    local c = D.setup({ device = 'cuda', precision = 'bf16' })
    check(c.device == 'cuda' and c.precision == 'bf16' and c.fallback == nil and C.mtt_get_float32_matmul_precision() == 2,
      'setup cuda bf16')
    check(D.setup({ device = 'cuda', precision = 'tf32' }).matmul_precision == 'high', 'setup cuda tf32')
  else
    -- the error says that no CUDA device is available, and why
    expect_error('setup cuda without a device', { 'mtt.device.setup', "'cuda'", 'no CUDA device is available', info },
      D.setup, { device = 'cuda', precision = 'bf16' })
    expect_error('prepare cuda without a device', { 'no CUDA device is available' }, D.prepare,
      mtt.nn.Linear(3, 2), { device = 'cuda' })
    print('skipped: no CUDA device (mtt.device.setup{device = "cuda"} and prepare on cuda)')
  end
  D.setup({ device = 'cpu' })
  -- prepare on the cpu: the model stays where it is (the same tensors), to() passes values through
  local lin = mtt.nn.Linear(4, 3, { generator = mtt.Generator(3) })
  local w0 = lin.weight
  check(D.prepare(lin, D.setup()) == lin and lin.weight == w0, 'prepare cpu keeps the model')
  mtt.set_float32_matmul_precision('high')
  check(D.prepare(lin) == lin and D.prepare(lin, 'cpu') == lin and D.prepare(lin, 'auto') == lin or not available,
    'prepare with nil / a name')
  check(mtt.get_float32_matmul_precision() == 'high', 'prepare with a name keeps the precision setting')
  mtt.set_float32_matmul_precision('highest')
  expect_error('prepare to an unknown device', { 'mtt.device.prepare', "'tpu'" }, D.prepare, lin, 'tpu')
  expect_error('prepare a non-module', { 'mtt.device.prepare', 'mtt.nn module' }, D.prepare, 42, 'cpu')
  local x, info_tab = mtt.ones(2), { rows = 1 }
  local a1, a2, a3 = D.to('cpu', x, info_tab, nil)
  check(a1 == x and a2 == info_tab and a3 == nil, 'device.to on the cpu passes values through')
  expect_error('device.to bad cfg', { 'mtt.device.to' }, D.to, 'tpu', x)
  -- mtt.cuda's queries answer in any build
  check(mtt.cuda.device_count() == C.mtt_cuda_device_count() and mtt.cuda.get_device_name() == info, 'mtt.cuda queries')
  check(type(mtt.cuda.host_waits()) == 'number', 'mtt.cuda.host_waits')
end

if not available and os.getenv('MTT_CUDA_EXPECT_DEVICE') == '1' then
  fail('device', 'MTT_CUDA_EXPECT_DEVICE=1 but there is none: ' .. info)
end
if not available then
  -- a clear error for anything that needs the device, and the cpu goes on working
  local why = info:find('no CUDA backend', 1, true) and 'no CUDA backend' or 'no usable CUDA device'
  expect_error('zeros on cuda', { 'cuda', why }, mtt.zeros, 2, 3, { device = 'cuda' })
  expect_error('randn on cuda', { 'cuda', why }, mtt.randn, 4, { device = 'cuda' })
  expect_error('to cuda', { 'cuda', why }, function() return mtt.ones(3):to('cuda') end)
  expect_error('to {device}', { 'cuda', why }, function() return mtt.ones(3):to({ device = 'cuda' }) end)
  checks = checks + 1
  if C.mtt_cuda_synchronize() == 0 then fail('synchronize', 'succeeded without a device') end
  local stats = ffi.new('int64_t[4]')
  check(C.mtt_cuda_memory_stats(stats) ~= 0, 'memory_stats', 'succeeded without a device')
  check(C.mtt_cuda_empty_cache() ~= 0, 'empty_cache', 'succeeded without a device')
  check(ffi.string(C.mtt_last_error()):find('cuda', 1, true) ~= nil, 'empty_cache message')
  expect_error('mtt.cuda.memory_stats', { 'cuda', why }, mtt.cuda.memory_stats)
  expect_error('mtt.cuda.synchronize', { 'cuda', why }, mtt.cuda.synchronize)
  check(mtt.cuda.host_waits() == 0, 'host_waits without a device')
  check((mtt.ones(2, 2) * 3):sum():item() == 12, 'cpu after cuda errors')
  check(mtt.ones(3):to('cpu'):sum():item() == 3, 'to cpu on cpu')
  assert(#failures == 0, 'test_cuda: ' .. #failures .. ' failure(s):\n' .. table.concat(failures, '\n'))
  print(string.format('test_cuda: %d checks passed (device selection and errors)', checks))
  print('skipped: no CUDA device (the op suite against the cpu did not run; ' ..
        'ctest lua_test_cuda_emulated runs it on the emulated device)')
  return
end

-- ---------------------------------------------------------------------------------------------
-- Part 2: on the device
-- ---------------------------------------------------------------------------------------------
local emulated = C.mtt_cuda_is_emulated() ~= 0
local t_start = os.clock()

-- ---- transfers and dtypes ----
do
  local g = mtt.Generator(11)
  for _, dt in ipairs({ 'f32', 'f64' }) do
    local x = mtt.randn(5, 7, { dtype = dt, generator = g })
    local d = x:to('cuda')
    check(d.device == 'cuda' and d.dtype == dt, 'to cuda ' .. dt, 'device or dtype wrong')
    close('round trip ' .. dt, d:to('cpu'), x, 0)
    close('strided to cuda ' .. dt, x:t():to('cuda'), x:t():contiguous(), 0)
    close('strided on cuda ' .. dt, d:t():to('cpu'), x:t():contiguous(), 0)
    close('contiguous() on cuda ' .. dt, d:t():contiguous():to('cpu'), x:t():contiguous(), 0)
    close('slice on cuda ' .. dt, d:slice(2, 2, 7, 2):to('cpu'), x:slice(2, 2, 7, 2):contiguous(), 0)
  end
  local i = mtt.randint(-50, 50, { 4, 6 }, { generator = g })
  close('round trip i32', i:to('cuda'):to('cpu'), i, 0)
  local x = mtt.randn(6, 5, { generator = g })
  close('f32 -> f64 on cuda', x:to('cuda'):to('f64'):to('cpu'), x:to('f64'), 0)
  close('f32 -> i32 on cuda', (x * 10):to('cuda'):to('i32'):to('cpu'), (x * 10):to('i32'), 0)
  close('i32 -> f32 on cuda', i:to('cuda'):to('f32'):to('cpu'), i:to('f32'), 0)
  -- bf16 exists on cuda (the cpu has no bf16 kernels): round to nearest even, checked bit by bit
  local back = x:to('cuda'):to('bf16'):to('f32'):to('cpu'):contiguous()
  local xs, bs = ffi.cast('float *', x:contiguous():data_ptr()), ffi.cast('float *', back:data_ptr())
  local u = ffi.new('union { float f; uint32_t u; }')
  local bad = 0
  for k = 0, x:numel() - 1 do
    u.f = xs[k]
    local bits = u.u
    local rounded = bit.band(bits + 0x7fff + bit.band(bit.rshift(bits, 16), 1), 0xffff0000)
    u.u = rounded
    if u.f ~= bs[k] then bad = bad + 1 end
  end
  check(bad == 0, 'f32 -> bf16 -> f32 on cuda', bad .. ' elements not rounded to nearest even')
  close('zeros on cuda', mtt.zeros(3, 4, { device = 'cuda' }):to('cpu'), mtt.zeros(3, 4), 0)
  close('full on cuda', mtt.full({ 2, 3 }, -2.5, { device = 'cuda', dtype = 'f64' }):to('cpu'),
    mtt.full({ 2, 3 }, -2.5, { dtype = 'f64' }), 0)
  close('arange on cuda', mtt.arange(0, 10, 0.5, { device = 'cuda' }):to('cpu'), mtt.arange(0, 10, 0.5), 0)
  close('tensor{} on cuda', mtt.tensor({ { 1, 2 }, { 3, 4 } }, { device = 'cuda' }):to('cpu'),
    mtt.tensor({ { 1, 2 }, { 3, 4 } }), 0)
  -- empty tensors move too
  check(mtt.zeros(0, 3):to('cuda'):to('cpu'):numel() == 0, 'empty transfer')
end

-- ---- random streams: a seed means the same numbers on both devices ----
do
  local n = emulated and 5000 or 200000
  for _, dt in ipairs({ 'f32', 'f64' }) do
    close('rand ' .. dt, mtt.rand(n, { dtype = dt, device = 'cuda', generator = mtt.Generator(5) }):to('cpu'),
      mtt.rand(n, { dtype = dt, generator = mtt.Generator(5) }), 0)
    close('randn ' .. dt, mtt.randn(n, { dtype = dt, device = 'cuda', generator = mtt.Generator(6) }):to('cpu'),
      mtt.randn(n, { dtype = dt, generator = mtt.Generator(6) }), TOL.normal_draw)
  end
  close('randint', mtt.randint(-7, 1000, { n }, { device = 'cuda', generator = mtt.Generator(7) }):to('cpu'),
    mtt.randint(-7, 1000, { n }, { generator = mtt.Generator(7) }), 0)
  -- the default generator advances the same way: two draws in a row match
  mtt.manual_seed(42)
  local c1, c2 = mtt.rand(100, { device = 'cuda' }), mtt.rand(100, { device = 'cuda' })
  mtt.manual_seed(42)
  local h1, h2 = mtt.rand(100), mtt.rand(100)
  close('default generator 1', c1:to('cpu'), h1, 0)
  close('default generator 2', c2:to('cpu'), h2, 0)
end

-- ---- every op of the shared cases, forward and backward ----
local suite = require 'op_cases'
suite.check_coverage('test_cuda')

local function run_case(case, inputs, w)
  local y = case.f(unpack(inputs))
  local loss = (y * w):sum()
  loss:backward()
  local grads = {}
  for i, x in ipairs(inputs) do grads[i] = x.grad end
  return y, grads
end

local function compare_case(name, case, seed, dtype, tol)
  local host = suite.make_inputs(case, seed, dtype)
  local dev = {}
  for i, x in ipairs(host) do dev[i] = to_cuda(x) end
  local probe = case.f(unpack(host))
  -- (a stream of its own: drawn from the inputs' seed, w could equal an input, and the gradient
  -- of sum(layer_norm(x) * x) cancels to nearly nothing)
  local w = mtt.randn(probe:shape(), { dtype = probe.dtype, generator = mtt.Generator(seed + 100000) })
  if not probe.grad_required then w = nil end
  local yh, gh, yd, gd
  if w then
    yh, gh = run_case(case, host, w)
    yd, gd = run_case(case, dev, w:to('cuda'))
  else
    yh, yd = case.f(unpack(host)), case.f(unpack(dev))
    gh, gd = {}, {}
  end
  check(yd.device == 'cuda', name .. ' device', 'output is on ' .. yd.device)
  local worst = close(name .. ' forward', yd, yh, tol) or math.huge
  for i, x in ipairs(host) do
    if x.grad_required then
      if check(gd[i] ~= nil, name .. ' grad ' .. i, 'no gradient on cuda') then
        worst = math.max(worst, close(name .. ' grad ' .. i, gd[i], gh[i], tol) or math.huge)
      end
    end
  end
  return worst
end

do
  local worst = { f32 = 0, f64 = 0 }
  for index, case in ipairs(suite.cases) do
    for _, dt in ipairs({ 'f32', 'f64' }) do
      local name = string.format('%s (%s)', suite.name_of(case), dt)
      local e = compare_case(name, case, 1000 + index, dt, op_tol(case.op, dt))
      worst[dt] = math.max(worst[dt], e)
    end
  end
  print(string.format('op suite: %d cases x {f32, f64}, worst normalized error f32 %.2e, f64 %.2e', #suite.cases,
    worst.f32, worst.f64))
end

-- ---- larger shapes: tiles, chunks and blocks of the kernels ----
local big = {
  { op = 'matmul', name = 'matmul 67x129 @ 129x45', inputs = { { 67, 129 }, { 129, 45 } }, f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul long k', inputs = { { 9, 1500 }, { 1500, 7 } }, f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul batched broadcast', inputs = { { 3, 1, 33, 17 }, { 1, 4, 17, 9 } },
    f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul transposed operands', inputs = { { 40, 30 }, { 50, 40 } },
    f = function(a, b) return a:t():matmul(b:t()) end },
  { op = 'matmul', name = 'matmul linear', inputs = { { 4, 50, 96 }, { 160, 96 } }, f = function(x, w) return F.linear(x, w) end },
  { op = 'matmul', name = 'matmul permuted batch', inputs = { { 5, 6, 4, 8 }, { 5, 4, 8, 3 } },
    f = function(a, b) return a:permute(1, 3, 2, 4):matmul(b) end },
  { op = 'softmax', name = 'softmax 1000', inputs = { { 37, 1000 } }, f = function(x) return (x * 3):softmax(-1) end },
  { op = 'log_softmax', name = 'log_softmax 1000', inputs = { { 37, 1000 } }, f = function(x) return (x * 3):log_softmax(-1) end },
  { op = 'softmax', name = 'softmax dim 1', inputs = { { 20, 9 } }, f = function(x) return x:softmax(1) end },
  { op = 'layer_norm', name = 'layer_norm 768', inputs = { { 300, 768 }, { 768 }, { 768 } },
    f = function(x, w, b) return F.layer_norm(x * 2 + 1, w, b, 1e-5) end },
  { op = 'layer_norm', name = 'layer_norm no affine', inputs = { { 70, 33 } }, f = function(x) return F.layer_norm(x, nil, nil, 1e-5) end },
  { op = 'cross_entropy', name = 'cross_entropy 1003 classes', inputs = { { 200, 1003 }, { shape = { 200 }, kind = 'int', high = 1003, grad = false } },
    f = function(l, t) return F.cross_entropy(l * 4, t) end },
  { op = 'cross_entropy', name = 'cross_entropy mask + ignore', inputs = { { 3, 70, 50 }, { shape = { 3, 70 }, kind = 'int', high = 50, grad = false },
    { shape = { 3, 70 }, kind = 'mask', grad = false } },
    f = function(l, t, m)
      local tt = t:masked_fill(t:lt(mtt.full({ 1 }, 5, { dtype = 'i32', device = t.device })), -100)
      return F.cross_entropy(l, tt, { mask = m * 0.5 })
    end },
  { op = 'attention', name = 'attention causal 70', inputs = { { 2, 3, 70, 32 }, { 2, 3, 70, 32 }, { 2, 3, 70, 32 } },
    f = function(q, k, v) return F.attention(q, k, v, { causal = true }) end },
  { op = 'attention', name = 'attention causal tq < tk', inputs = { { 1, 2, 37, 16 }, { 1, 2, 80, 16 }, { 1, 2, 80, 16 } },
    f = function(q, k, v) return F.attention(q, k, v, { causal = true }) end },
  { op = 'attention', name = 'attention dv != d', inputs = { { 2, 2, 45, 24 }, { 2, 2, 45, 24 }, { 2, 2, 45, 40 } },
    f = function(q, k, v) return F.attention(q, k, v, { causal = false, scale = 0.2 }) end },
  { op = 'attention', name = 'attention from fused qkv', inputs = { { 2, 67, 3 * 64 } },
    f = function(x)
      local B, T, H, D = 2, 67, 4, 16
      local q = x:narrow(3, 1, 64):view(B, T, H, D):transpose(2, 3)
      local k = x:narrow(3, 65, 64):view(B, T, H, D):transpose(2, 3)
      local v = x:narrow(3, 129, 64):view(B, T, H, D):transpose(2, 3)
      return F.attention(q, k, v, { causal = true }):transpose(2, 3):contiguous():view(B, T, 64)
    end },
  { op = 'embedding', name = 'embedding repeats', inputs = { { 500, 64 }, { shape = { 6, 50 }, kind = 'int', high = 40, grad = false } },
    f = function(w, i) return F.embedding(i, w) end, exact_grad = true },
  { op = 'index_select', name = 'index_select repeats', inputs = { { 30, 5, 7 }, { shape = { 90 }, kind = 'int', high = 30, grad = false } },
    f = function(x, i) return x:index_select(1, i) end, exact_grad = true },
  { op = 'index_select', name = 'index_select dim 2', inputs = { { 4, 30, 7 }, { shape = { 50 }, kind = 'int', high = 30, grad = false } },
    f = function(x, i) return x:index_select(2, i) end },
  { op = 'gather', name = 'gather dim 2', inputs = { { 20, 30, 3 }, { shape = { 20, 45, 3 }, kind = 'int', high = 30, grad = false } },
    f = function(x, i) return x:gather(2, i) end },
  { op = 'gather', name = 'gather smaller index', inputs = { { 6, 9 }, { shape = { 4, 5 }, kind = 'int', high = 9, grad = false } },
    f = function(x, i) return x:gather(2, i) end },
  { op = 'sum', name = 'sum dims', inputs = { { 50, 300, 7 } },
    f = function(x) return mtt.cat({ x:sum(1):view(-1), x:sum(2):view(-1), x:sum(3):view(-1) }, 1) end },
  { op = 'sum_all', name = 'sum_all large', inputs = { { emulated and 20000 or 3000000 } }, f = function(x) return x:sum() end },
  { op = 'mean', name = 'mean rows', inputs = { { 3000, 40 } }, f = function(x) return x:mean(1) end },
  { op = 'max', name = 'max dims', inputs = { { 30, 200, 5 } },
    f = function(x) return mtt.cat({ (x:max(1)):view(-1), (x:max(2)):view(-1), (x:max(3)):view(-1) }, 1) end },
  { op = 'max_all', name = 'max_all', inputs = { { 100, 100 } }, f = function(x) return x:max() end },
  { op = 'chain', name = 'broadcast chain', inputs = { { 4, 1, 5 }, { 3, 1 }, { 5 } },
    f = function(a, b, c) return ((a + b) * c - a / (c * c + 1)):tanh():gelu() end },
  { op = 'chain', name = 'unary chain', inputs = { { shape = { 60, 70 }, kind = 'positive' } },
    f = function(x) return (x:log() + x:sqrt() + x:exp() * 0.1 + x:sigmoid() + x:relu() + x:clamp(0.7, 1.1) + x ^ 1.7 + 2 / x) end },
  { op = 'dropout', name = 'dropout large', inputs = { { 300, 301 } },
    f = function(x) return F.dropout(x, 0.3, { generator = mtt.Generator(3) }) end },
  { op = 'masked_fill', name = 'masked_fill strided', inputs = { { 8, 9 }, { shape = { 9 }, kind = 'mask', grad = false } },
    f = function(x, m) return x:t():masked_fill(m:view(9, 1), -1) end },
  { op = 'cat', name = 'cat dim 2', inputs = { { 5, 3 }, { 5, 8 }, { 5, 1 } }, f = function(a, b, c) return mtt.cat({ a, b, c }, 2) end },
}

do
  local worst = 0
  for index, case in ipairs(big) do
    for _, dt in ipairs({ 'f32', 'f64' }) do
      local tol = case.exact_grad and 0 or op_tol(case.op, dt)
      local e = compare_case(case.name .. ' (' .. dt .. ')', case, 5000 + index, dt, tol)
      if dt == 'f32' then worst = math.max(worst, e) end
    end
  end
  print(string.format('larger shapes: %d cases x {f32, f64}, worst f32 normalized error %.2e', #big, worst))
end

-- ---- non-differentiable kernels ----
do
  local g = mtt.Generator(21)
  local x = mtt.randn(17, 40, { generator = g })
  x[{ 3, 5 }] = 0 / 0              -- NaN wins max and is the largest for top-k
  x[{ 4, 7 }] = x[{ 4, 9 }]        -- a tie: the lower index wins
  local d = x:to('cuda')
  for _, dim in ipairs({ 1, 2 }) do
    local vh, ih = x:max(dim)
    local vd, id = d:max(dim)
    close('max values dim ' .. dim, vd, vh, 0)
    close('max indices dim ' .. dim, id, ih, 0)
    close('argmax dim ' .. dim, d:argmax(dim), x:argmax(dim), 0)
    for _, largest in ipairs({ true, false }) do
      local k = dim == 1 and 5 or 11
      local th, tih = x:topk(k, dim, largest)
      local td, tid = d:topk(k, dim, largest)
      close(string.format('topk values dim %d largest %s', dim, tostring(largest)), td, th, 0)
      close(string.format('topk indices dim %d largest %s', dim, tostring(largest)), tid, tih, 0)
    end
  end
  local i = mtt.randint(-5, 5, { 30, 4 }, { generator = g })
  local di = i:to('cuda')
  close('topk i32', di:topk(3, 1), i:topk(3, 1), 0)
  close('argmax i32', di:argmax(1), i:argmax(1), 0)
  local k0, k2, k3 = mtt.zeros(1, { dtype = 'i32' }), mtt.full({ 1 }, 2, { dtype = 'i32' }), mtt.full({ 1, 4 }, 3, { dtype = 'i32' })
  local d0, d2, d3 = k0:to('cuda'), k2:to('cuda'), k3:to('cuda')
  for _, op in ipairs({ 'eq', 'gt', 'lt' }) do
    close(op .. ' f32', d[op](d, d:t():t() * 0.5), x[op](x, x * 0.5), 0)
    close(op .. ' i32', di[op](di, d0), i[op](i, k0), 0)
  end
  close('i32 arithmetic', (di * d3 + di) - di / d2, (i * k3 + i) - i / k2, 0)
  local mi = mtt.randint(0, 2, { 17, 1 }, { generator = g })
  close('masked_fill i32 mask', d:masked_fill(mi:to('cuda'), 7), x:masked_fill(mi, 7), 0)
end

-- ---- in place, on strided views ----
do
  local g = mtt.Generator(31)
  local x, y = mtt.randn(6, 8, { generator = g }), mtt.randn(8, 6, { generator = g })
  local dx, dy = x:to('cuda'), y:to('cuda')
  x:t():add_(y, 0.5); dx:t():add_(dy, 0.5)
  close('add_ strided', dx, x, TOL.f32)
  x:slice(2, 1, 8, 3):mul_(mtt.full({ 1 }, -2)); dx:slice(2, 1, 8, 3):mul_(mtt.full({ 1 }, -2, { device = 'cuda' }))
  close('mul_ broadcast', dx, x, 0)
  x:narrow(1, 2, 3):fill_(1.25); dx:narrow(1, 2, 3):fill_(1.25)
  close('fill_ narrow', dx, x, 0)
  x:t():copy_(y); dx:t():copy_(dy)
  close('copy_ transposed', dx, x, 0)
  x:zero_(); dx:zero_()
  close('zero_', dx, x, 0)
  local xi, dxi = mtt.randint(0, 9, { 5, 5 }, { generator = g }), nil
  dxi = xi:to('cuda')
  xi:add_(xi:t(), 2); dxi:add_(dxi:t(), 2)
  close('add_ i32 with alpha', dxi, xi, 0)
  local xd, dxd = mtt.randn(5, 5, { dtype = 'f64', generator = g }), nil
  dxd = xd:to('cuda')
  xd:add_(mtt.ones(5, 5, { dtype = 'f64' }):t(), -1); dxd:add_(mtt.ones(5, 5, { dtype = 'f64', device = 'cuda' }):t(), -1)
  close('add_ f64', dxd, xd, TOL.f64)
end

-- ---- optimizers and clipping ----
do
  for _, kind in ipairs({ 'AdamW', 'SGD' }) do
    local g = mtt.Generator(41)
    local ph = { mtt.randn(30, 20, { generator = g }):requires_grad(), mtt.randn(20, { generator = g }):requires_grad() }
    local pd = { to_cuda(ph[1]), to_cuda(ph[2]) }
    local opts = kind == 'AdamW' and { lr = 1e-2, weight_decay = 0.1 } or { lr = 0.1, momentum = 0.9, nesterov = true }
    local oh, od = mtt.optim[kind](ph, opts), mtt.optim[kind](pd, opts)
    local xin = mtt.randn(16, 30, { generator = g })
    local xd = xin:to('cuda')
    for step = 1, 3 do
      local norms = {}
      for side, run in ipairs({ { ph, oh, xin }, { pd, od, xd } }) do
        local p, opt, inp = run[1], run[2], run[3]
        opt:zero_grad()
        local loss = (inp:matmul(p[1]) + p[2]):tanh():sum()
        loss:backward()
        norms[side] = mtt.nn.utils.clip_grad_norm_(p, 1.0)
        opt:step()
      end
      check(math.abs(norms[1] - norms[2]) <= 1e-5 * norms[1], kind .. ' gradient norm step ' .. step,
        string.format('%.9g vs %.9g', norms[2], norms[1]))
    end
    close(kind .. ' weights after 3 steps', pd[1], ph[1], 1e-5)
    close(kind .. ' bias after 3 steps', pd[2], ph[2], 1e-5)
  end
  local g = mtt.Generator(43)
  local ph = { mtt.randn(50, 40, { generator = g }):requires_grad() }
  local pd = { to_cuda(ph[1]) }
  for _, p in ipairs({ ph[1], pd[1] }) do ((p * p * 3):sum()):backward() end
  local nh = mtt.nn.utils.clip_grad_norm_(ph, 0.5)
  local nd = mtt.nn.utils.clip_grad_norm_(pd, 0.5)
  check(math.abs(nh - nd) <= 1e-6 * nh, 'clip_grad_norm norm', string.format('%.9g vs %.9g', nd, nh))
  close('clip_grad_norm scaled gradient', pd[1].grad, ph[1].grad, TOL.f32)
end

-- ---- reading device tensors on the host: item, indexing, totable, tostring ----
do
  local g = mtt.Generator(51)
  for _, dt in ipairs({ 'f32', 'f64' }) do
    local x = mtt.randn(4, 5, { dtype = dt, generator = g })
    local d = x:to('cuda')
    local waits = mtt.cuda.host_waits()
    check(d:sum():item() == d:sum():to('cpu'):item(), 'item on cuda ' .. dt, 'item differs from the copied value')
    check(mtt.cuda.host_waits() > waits, 'item waits for the device')
    check(d[{ 3, 4 }] == x[{ 3, 4 }], 'index on cuda ' .. dt)
    check(d:t()[{ 4, 3 }] == x[{ 3, 4 }] and d[2][5] == x[2][5], 'index of a view on cuda ' .. dt)
    check(d:select(1, 2):slice(1, 2, 5, 2)[2] == x[{ 2, 4 }], 'index of a strided slice on cuda ' .. dt)
    check(d:view(20)[7] == x:view(20)[7], 'index of a flat view on cuda ' .. dt)
    local td, th = d:t():totable(), x:t():totable()
    local same = #td == #th
    for i = 1, #th do for j = 1, #th[i] do same = same and td[i][j] == th[i][j] end end
    check(same, 'totable on cuda ' .. dt, 'values differ from the cpu')
    check(d:sum():totable() == x:sum():totable() or math.abs(d:sum():totable() - x:sum():totable()) < 1e-5,
      'totable 0-d on cuda ' .. dt)
    check(mtt.zeros(0, 3, { device = 'cuda', dtype = dt }):totable()[1] == nil, 'totable empty on cuda ' .. dt)
    local sd, sh = tostring(d), tostring(x)
    check(sd:find('device=cuda', 1, true) ~= nil and sd:gsub(', device=cuda', '') == sh, 'tostring on cuda ' .. dt,
      sd .. ' vs ' .. sh)
  end
  local i = mtt.randint(-1000, 1000, { 3, 3 }, { generator = g })
  local di = i:to('cuda')
  check(di[{ 2, 3 }] == i[{ 2, 3 }] and di:max():item() == i:max():item(), 'item and index on cuda i32')
  -- bf16 and f16 exist only on the device: item converts there
  local h = mtt.tensor({ 1.5, -2.25, 3e38 }):to('cuda')
  check(h:to('bf16')[2] == -2.25 and h:to('f16')[1] == 1.5, 'index on cuda bf16 / f16')
  check(h:to('bf16'):narrow(1, 3, 1):item() == h:to('bf16'):to('f32'):to('cpu')[3], 'item on cuda bf16')
  check(h:to('f16')[3] == math.huge, 'f16 overflow reads as inf')
  local nan = mtt.tensor({ 0 / 0 }):to('cuda'):item()
  check(nan ~= nan, 'item NaN on cuda')
end

-- ---- clipping over a parameter list: one reduction, one wait for the device ----
do
  local g = mtt.Generator(61)
  local shapes = { { 7, 5 }, { 300 }, { 1 }, { 33, 65 }, { 0, 4 }, { 2, 3, 4 }, { emulated and 5000 or 2000000 }, { 9 } }
  for _, dt in ipairs({ 'f32', 'f64' }) do
    local ph, pd = {}, {}
    for k, sh in ipairs(shapes) do
      ph[k] = mtt.randn(sh, { dtype = dt, generator = g }):requires_grad()
      pd[k] = to_cuda(ph[k])
    end
    -- gradients: squares (a sum of squares in the gradient norm), one parameter without a gradient,
    -- one gradient strided (a transposed view)
    for side, ps in ipairs({ ph, pd }) do
      local loss = (ps[1] * ps[1]):sum() * 3
      for k = 2, #ps do if k ~= 8 then loss = loss + (ps[k] * ps[k]):sum() end end
      loss:backward()
      local gt = ps[4].grad
      local strided = mtt.zeros(65, 33, { dtype = dt, device = gt.device }):t()
      strided:copy_(gt)
      ps[4]:set_grad(strided)
      local _ = side
    end
    check(pd[8].grad == nil and not pd[4].grad:is_contiguous(), 'clip list set-up ' .. dt)
    local waits = mtt.cuda.host_waits()
    local nd = mtt.nn.utils.clip_grad_norm_(pd, 1e30)
    local used = mtt.cuda.host_waits() - waits
    check(used == 1, 'clip_grad_norm ' .. dt .. ': one wait for the whole list', used .. ' waits for ' .. #pd .. ' tensors')
    local nh = mtt.nn.utils.clip_grad_norm_(ph, 1e30)
    -- (squares of f32 are exact in double: only the order of the additions differs)
    check(math.abs(nd - nh) <= 1e-12 * nh, 'clip_grad_norm list ' .. dt .. ' vs cpu', string.format('%.17g vs %.17g', nd, nh))
    check(mtt.nn.utils.clip_grad_norm_(pd, 1e30) == nd, 'clip_grad_norm list deterministic ' .. dt)
    -- clipping scales every gradient as on the cpu
    local ch, cd = mtt.nn.utils.clip_grad_norm_(ph, 0.25), mtt.nn.utils.clip_grad_norm_(pd, 0.25)
    check(math.abs(cd - ch) <= 1e-12 * ch, 'clip_grad_norm clip ' .. dt)
    for k = 1, #ph do
      if ph[k].grad then close('clipped gradient ' .. k .. ' ' .. dt, pd[k].grad, ph[k].grad, op_tol('mul', dt)) end
    end
    -- one parameter: the single-tensor path; parameters on both devices: one tensor at a time
    local one = mtt.nn.utils.clip_grad_norm_({ pd[2] }, 1e30)
    check(math.abs(one - mtt.nn.utils.clip_grad_norm_({ ph[2] }, 1e30)) <= 1e-12 * one, 'clip_grad_norm one tensor ' .. dt)
    local mixed = mtt.nn.utils.clip_grad_norm_({ ph[1], pd[2], ph[3], pd[4] }, 1e30)
    local ref = mtt.nn.utils.clip_grad_norm_({ ph[1], ph[2], ph[3], ph[4] }, 1e30)
    check(math.abs(mixed - ref) <= 1e-12 * ref, 'clip_grad_norm mixed devices ' .. dt, string.format('%.17g vs %.17g', mixed, ref))
  end
  -- a non-finite gradient spreads as on the cpu
  local a, b = mtt.ones(3):requires_grad(), mtt.ones(2):requires_grad()
  ;(a * (0 / 0)):sum():backward()
  ;(b * 2):sum():backward()
  local da, db = to_cuda(a), to_cuda(b)
  da:set_grad(a.grad:to('cuda')); db:set_grad(b.grad:to('cuda'))
  local n = mtt.nn.utils.clip_grad_norm_({ da, db }, 1)
  check(n ~= n, 'clip_grad_norm NaN spreads on cuda')
end

-- ---- mtt.device.prepare: a model moved to the device computes what it computed on the cpu ----
do
  local cfg = mtt.device.setup({ device = 'cuda', precision = 'f32' })
  local conf = { vocab_size = 37, n_positions = 16, n_embd = 16, n_layer = 1, n_head = 2, resid_pdrop = 0,
    embd_pdrop = 0, attn_pdrop = 0 }
  local mh, md = mtt.nn.GPT(conf), mtt.nn.GPT(conf)
  md:load_state_dict(mh:state_dict())
  mtt.set_float32_matmul_precision('medium')
  check(mtt.device.prepare(md, 'cuda') == md, 'prepare returns the model')
  check(mtt.get_float32_matmul_precision() == 'medium', 'prepare to cuda by name keeps the precision setting')
  mtt.device.setup({ device = 'cuda', precision = 'f32' })
  local all_cuda = true
  for _, p in ipairs(md:parameters()) do all_cuda = all_cuda and p.device == 'cuda' and p.is_leaf and p.grad_required end
  check(all_cuda, 'prepare moves every parameter (leaves that require grad)')
  local idx = mtt.randint(0, 37, { 2, 8 }, { generator = mtt.Generator(71) })
  local tgt = mtt.randint(0, 37, { 2, 8 }, { generator = mtt.Generator(72) })
  local di, dt = mtt.device.to(cfg, idx, tgt)
  check(di.device == 'cuda' and dt.device == 'cuda', 'device.to moves a batch')
  local _, lh = mh(idx, tgt)
  local _, ld = md(di, dt)
  check(math.abs(ld:item() - lh:item()) <= 1e-5 * math.abs(lh:item()), 'prepared model loss on cuda',
    string.format('%.9g vs %.9g', ld:item(), lh:item()))
  local cb = mtt.device.setup({ device = 'cuda', precision = 'bf16' })
  local _, lb = md(di, dt)
  check(cb.precision == 'bf16' and math.abs(lb:item() - lh:item()) <= 1e-2 * math.abs(lh:item()),
    'prepared model loss in bf16', string.format('%.9g vs %.9g', lb:item(), lh:item()))
  mtt.device.setup({ device = 'cpu' })
end

-- ---- errors on the device: values, never crashes ----
do
  local w = mtt.zeros(5, 2, { device = 'cuda' })
  expect_error('embedding id >= V', { 'embedding', 'index 7', 'position 2', '5 rows' }, F.embedding,
    mtt.tensor({ 0, 7 }, { dtype = 'i32', device = 'cuda' }), w)
  expect_error('cross_entropy target', { 'cross_entropy', 'target 9', '4 classes' }, F.cross_entropy,
    mtt.zeros(3, 4, { device = 'cuda' }), mtt.tensor({ 0, 9, 1 }, { dtype = 'i32', device = 'cuda' }))
  expect_error('gather index', { 'gather', 'index 9' }, function()
    return mtt.zeros(2, 3, { device = 'cuda' }):gather(2, mtt.tensor({ { 9 }, { 0 } }, { dtype = 'i32', device = 'cuda' }))
  end)
  expect_error('mixed devices', { 'add', 'different devices' }, function() return mtt.zeros(3) + mtt.zeros(3, { device = 'cuda' }) end)
  expect_error('matmul mixed devices', { 'matmul', 'different devices' }, mtt.matmul, mtt.zeros(2, 2), mtt.zeros(2, 2, { device = 'cuda' }))
  expect_error('set on cuda', { 'set', 'not on the cpu' }, function() local t = mtt.zeros(2, { device = 'cuda' }); t[1] = 1 end)
  expect_error('item of many on cuda', { 'item', '3 elements' }, function() return mtt.zeros(3, { device = 'cuda' }):item() end)
  expect_error('huge allocation', { 'memory', 'cuda' }, mtt.zeros, 2e14, { device = 'cuda' })
  expect_error('larger than the device', { 'memory', 'cuda' }, mtt.empty, 200, 1024, 1024, 1024, { device = 'cuda' })
  -- the device still works after the errors
  close('after errors', (mtt.ones(4, { device = 'cuda' }) * 2):sum():to('cpu'), mtt.tensor(8), 0)
end

-- ---- memory: the caching allocator ----
do
  local stats = ffi.new('int64_t[4]')
  check(C.mtt_cuda_synchronize() == 0, 'synchronize', ffi.string(C.mtt_last_error()))
  collectgarbage(); collectgarbage()
  check(C.mtt_cuda_memory_stats(stats) == 0, 'memory_stats', ffi.string(C.mtt_last_error()))
  local before = tonumber(stats[0])
  local t = mtt.zeros(1000, 1000, { device = 'cuda' })
  C.mtt_cuda_memory_stats(stats)
  local in_use = tonumber(stats[0])
  check(in_use >= before + 4e6, 'memory in use', 'a 4 MB tensor did not count')
  check(tonumber(stats[2]) >= in_use and tonumber(stats[3]) > 0, 'peak and total')
  t:free()
  C.mtt_cuda_memory_stats(stats)
  local cached = tonumber(stats[1])
  check(tonumber(stats[0]) <= in_use - 4e6 and cached >= 4e6, 'freed block cached',
    string.format('in use %d (was %d), cached %d', tonumber(stats[0]), in_use, cached))
  local again = mtt.zeros(1000, 1000, { device = 'cuda' })
  C.mtt_cuda_memory_stats(stats)
  check(tonumber(stats[1]) <= cached - 4e6, 'cached block reused',
    string.format('cached %d before, %d after', cached, tonumber(stats[1])))
  again:free()
  check(C.mtt_cuda_empty_cache() == 0, 'empty_cache', ffi.string(C.mtt_last_error()))
  C.mtt_cuda_memory_stats(stats)
  check(tonumber(stats[1]) == 0, 'cache emptied', 'cached ' .. tonumber(stats[1]))
end

-- ---- a small training run: the same on cuda every time, close to the cpu ----
local function train(device, steps)
  local g = mtt.Generator(77)
  local V, T, Cc, H = 40, 24, 32, 4
  local function param(...) return mtt.randn({ ... }, { generator = g, device = device }):mul(0.1):requires_grad() end
  local p = { wte = param(V, Cc), wpos = param(T, Cc), wqkv = param(3 * Cc, Cc), wo = param(Cc, Cc),
    w1 = param(4 * Cc, Cc), w2 = param(Cc, 4 * Cc), lnw = mtt.ones(Cc, { device = device }):requires_grad(),
    lnb = mtt.zeros(Cc, { device = device }):requires_grad() }
  local list = {}
  for _, k in ipairs({ 'wte', 'wpos', 'wqkv', 'wo', 'w1', 'w2', 'lnw', 'lnb' }) do list[#list + 1] = p[k] end
  local opt = mtt.optim.AdamW(list, { lr = 3e-3 })
  local data = mtt.randint(0, V, { 4, T + 1 }, { generator = mtt.Generator(78), device = device })
  local idx, tgt = data:narrow(2, 1, T):contiguous(), data:narrow(2, 2, T):contiguous()
  local losses = {}
  for step = 1, steps do
    opt:zero_grad()
    local x = F.embedding(idx, p.wte) + p.wpos
    local h = F.layer_norm(x, p.lnw, p.lnb, 1e-5)
    local qkv = F.linear(h, p.wqkv)
    local function head(i) return qkv:narrow(3, i * Cc + 1, Cc):view(4, T, H, Cc / H):transpose(2, 3) end
    local att = F.attention(head(0), head(1), head(2), { causal = true }):transpose(2, 3):contiguous():view(4, T, Cc)
    x = x + F.linear(att, p.wo)
    x = x + F.linear(F.dropout(F.linear(F.layer_norm(x, p.lnw, p.lnb, 1e-5), p.w1):gelu(), 0.1,
      { generator = mtt.Generator(step) }), p.w2)
    local logits = F.linear(x, p.wte)
    local loss = F.cross_entropy(logits, tgt)
    loss:backward()
    mtt.nn.utils.clip_grad_norm_(list, 1.0)
    opt:step()
    losses[step] = loss:to('cpu'):item()
  end
  return losses
end

do
  local steps = emulated and 6 or 30
  local l1, l2, lh = train('cuda', steps), train('cuda', steps), train('cpu', steps)
  local same, worst = true, 0
  for s = 1, steps do
    same = same and l1[s] == l2[s]
    worst = math.max(worst, math.abs(l1[s] - lh[s]) / math.abs(lh[s]))
  end
  check(same, 'training is deterministic on cuda', 'two runs gave different losses')
  check(lh[steps] < lh[1], 'training learns', string.format('loss %.4f -> %.4f', lh[1], lh[steps]))
  -- (the same f32 arithmetic in a different order: differences start near 1e-7 and may grow)
  check(worst < 1e-3, 'training cuda vs cpu', string.format('relative loss difference %.2e', worst))
  print(string.format('training: %d steps, loss %.4f -> %.4f, cuda vs cpu at most %.2e relative, cuda runs bitwise equal',
    steps, lh[1], lh[steps], worst))
end

-- ---- faster precisions: TF32 and bf16 (MEDIUM) change results a little, and only on cuda ----
do
  local g = mtt.Generator(91)
  local a, b = mtt.randn(64, 96, { generator = g }), mtt.randn(96, 80, { generator = g })
  local ref = a:matmul(b)
  local da, db = a:to('cuda'), b:to('cuda')
  local q, k, v = mtt.randn(2, 2, 50, 32, { generator = g }), mtt.randn(2, 2, 50, 32, { generator = g }),
    mtt.randn(2, 2, 50, 32, { generator = g })
  for _, x in ipairs({ q, k, v }) do x:requires_grad() end
  local yref = F.attention(q, k, v, { causal = true })
  local w = mtt.randn(yref:shape(), { generator = g })
  ;(yref * w):sum():backward()
  for _, mode in ipairs({ { 1, 'tf32', TOL.tf32 }, { 2, 'bf16', TOL.bf16 } }) do
    C.mtt_set_float32_matmul_precision(mode[1])
    local e = close('matmul ' .. mode[2], da:matmul(db), ref, mode[3])
    check(e and e > 1e-7, 'matmul ' .. mode[2] .. ' in effect', 'the result equals f32 exactly')
    if mode[2] == 'bf16' then
      local dq, dk, dv = to_cuda(q), to_cuda(k), to_cuda(v)
      local y = F.attention(dq, dk, dv, { causal = true })
      local ea = close('attention bf16 forward', y, yref, mode[3])
      check(ea and ea > 1e-7, 'attention bf16 in effect', 'the result equals f32 exactly')
      ;(y * w:to('cuda')):sum():backward()
      close('attention bf16 grad q', dq.grad, q.grad, mode[3])
      close('attention bf16 grad k', dk.grad, k.grad, mode[3])
      close('attention bf16 grad v', dv.grad, v.grad, mode[3])
      local l = F.linear(da:view(8, 8, 96), db:t():contiguous())
      close('linear bf16', l:view(64, 80), ref, mode[3])
      local ba, bb = mtt.randn(3, 1, 33, 17, { generator = g }), mtt.randn(1, 4, 17, 9, { generator = g })
      close('bf16 batched broadcast', ba:to('cuda'):matmul(bb:to('cuda'):transpose(3, 4):contiguous():transpose(3, 4)),
        ba:matmul(bb), mode[3])
      -- the packed operands are reused only while the tensor is unchanged
      local x, dx = a:clone(), da:clone()
      close('bf16 before an in-place change', dx:matmul(db), x:matmul(b), mode[3])
      x:mul_(mtt.full({ 1 }, -3)); dx:mul_(mtt.full({ 1 }, -3, { device = 'cuda' }))
      close('bf16 after an in-place change', dx:matmul(db), x:matmul(b), mode[3])
      -- gradients through a bf16 product (the gradient is packed once for both products)
      local ha, hb = a:detach():requires_grad(), b:detach():requires_grad()
      local ca, cb = to_cuda(ha), to_cuda(hb)
      local wg = mtt.randn(64, 80, { generator = g })
      ;(ha:matmul(hb) * wg):sum():backward()
      ;(ca:matmul(cb) * wg:to('cuda')):sum():backward()
      close('bf16 matmul grad a', ca.grad, ha.grad, mode[3])
      close('bf16 matmul grad b', cb.grad, hb.grad, mode[3])
    end
    C.mtt_set_float32_matmul_precision(0)
  end
  close('matmul back to f32', da:matmul(db), ref, TOL.f32)
end

assert(#failures == 0, 'test_cuda: ' .. #failures .. ' failure(s):\n' .. table.concat(failures, '\n'))
print(string.format('test_cuda: %d checks passed on %s in %.1f s', checks, info, os.clock() - t_start))
