-- mtt.device: where a run computes and in what arithmetic, as one recipe setting.
--
--   local dev = mtt.device.setup{device = 'cuda', precision = 'bf16'}
--   model = mtt.device.prepare(model, dev)       -- parameters moved to dev.device
--
-- precision names the arithmetic of f32 matrix products and attention (the core's
-- mtt_set_float32_matmul_precision, as torch.set_float32_matmul_precision):
--   'f32'  (HIGHEST) f32 everywhere;
--   'tf32' (HIGH)    cuBLAS may use TF32 tensor cores for f32 products;
--   'bf16' (MEDIUM)  bf16 mixed precision: products and attention on bf16 tensor cores with
--                    f32 accumulation, while parameters, gradients, AdamW moments and
--                    activations stay f32 tensors (f32 master weights and optimizer state).
-- The setting is process-wide (the core holds one), so setup is meant to be called once per run.
--
-- On the cpu, 'tf32' and 'bf16' fall back to f32 (documented choice): the cpu kernels compute
-- in f32 only, and a recipe written for a GPU should still run, unchanged, on a laptop or in CI.
-- The fallback is never silent: the returned table says precision = 'f32' and gives the reason
-- in `fallback`, and one line goes to stderr (unless quiet = true). Asking for device = 'cuda'
-- where there is none is an error that says why (no device, or no CUDA backend in the build);
-- device = 'auto' picks cuda when it is available, else the cpu.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'

local raise = U.raise
local M = {}

-- precision name -> the core's mtt_matmul_precision, and torch's names for the same modes
local LEVEL = { f32 = 0, tf32 = 1, bf16 = 2 }
local PRECISION_OF_LEVEL = { [0] = 'f32', 'tf32', 'bf16' }
local TORCH_LEVEL = { highest = 0, high = 1, medium = 2 }
local TORCH_NAME = { [0] = 'highest', 'high', 'medium' }
M.precisions = { 'f32', 'tf32', 'bf16' }
M.devices = { 'cpu', 'cuda', 'auto' }

-- The f32 matmul precision by torch's names: 'highest' | 'high' | 'medium'.
function M.set_float32_matmul_precision(name)
  local level = TORCH_LEVEL[name]
  if level == nil then
    raise(string.format("set_float32_matmul_precision: unknown precision '%s' (accepted: highest, high, medium)",
      tostring(name)))
  end
  U.check_status(C.mtt_set_float32_matmul_precision(level))
end

function M.get_float32_matmul_precision() return TORCH_NAME[C.mtt_get_float32_matmul_precision()] end

-- The current precision setting as a setup name ('f32' | 'tf32' | 'bf16').
function M.precision() return PRECISION_OF_LEVEL[C.mtt_get_float32_matmul_precision()] end

function M.cuda_available() return C.mtt_cuda_available() ~= 0 end

-- A line about the cuda device, or why there is none.
function M.cuda_info() return ffi.string(C.mtt_cuda_device_info()) end

local function no_device(fname)
  raise(string.format("%s: device 'cuda' was asked for but no CUDA device is available (%s); " ..
    "use device = 'cpu' or 'auto'", fname, M.cuda_info()))
end

local warned = {}

-- setup{device =, precision =, quiet =} -> {device, precision, matmul_precision, requested =
-- {device, precision}, fallback = reason | nil, info}: applies the precision setting and says what
-- was set. Defaults: device 'cpu', precision 'f32'.
function M.setup(opts)
  local o = options.check('mtt.device.setup', opts, 'device:string precision:string quiet:boolean')
  local want_device, want_precision = o.device or 'cpu', o.precision or 'f32'
  if want_device ~= 'cpu' and want_device ~= 'cuda' and want_device ~= 'auto' then
    raise(string.format("mtt.device.setup: unknown device '%s' (accepted: cpu, cuda, auto)", want_device))
  end
  if LEVEL[want_precision] == nil then
    raise(string.format("mtt.device.setup: unknown precision '%s' (accepted: f32, tf32, bf16)", want_precision))
  end
  local available = M.cuda_available()
  local device = want_device
  if device == 'auto' then device = available and 'cuda' or 'cpu' end
  if device == 'cuda' and not available then no_device('mtt.device.setup') end
  local precision, fallback = want_precision, nil
  if device == 'cpu' and precision ~= 'f32' then
    fallback = string.format("precision '%s' falls back to f32 on the cpu (its kernels compute in f32 only)", precision)
    precision = 'f32'
    if not o.quiet and not warned[want_precision] then
      warned[want_precision] = true
      io.stderr:write('mtt.device: ' .. fallback .. '\n')
    end
  end
  U.check_status(C.mtt_set_float32_matmul_precision(LEVEL[precision]))
  return {
    device = device, precision = precision, matmul_precision = TORCH_NAME[LEVEL[precision]],
    requested = { device = want_device, precision = want_precision }, fallback = fallback,
    info = device == 'cuda' and M.cuda_info() or 'cpu',
  }
end

-- The device a cfg names: a setup result (its device), a setup options table (passed through
-- setup, so its precision is applied), a device name or nil (the cpu; names leave the precision
-- setting as it is).
local function target_device(fname, cfg)
  if cfg == nil then return 'cpu' end
  if type(cfg) == 'string' then
    if cfg == 'auto' then return M.cuda_available() and 'cuda' or 'cpu' end
    if cfg ~= 'cpu' and cfg ~= 'cuda' then
      raise(string.format("%s: unknown device '%s' (accepted: cpu, cuda, auto)", fname, cfg))
    end
    if cfg == 'cuda' and not M.cuda_available() then no_device(fname) end
    return cfg
  end
  if type(cfg) ~= 'table' then raise(string.format('%s: cfg must be a table or a device name, got %s', fname, type(cfg))) end
  if cfg.requested == nil then return M.setup(cfg).device end
  return cfg.device
end

-- prepare(model, cfg) -> model: every parameter moved to cfg's device (model:to, so tied weights
-- stay tied; parameters already there are kept). Call it after loading weights into the model
-- (load_state_dict copies within one device: a cpu state dict into cpu parameters) and before
-- making the optimizer (it holds the parameter tensors).
function M.prepare(model, cfg)
  local fname = 'mtt.device.prepare'
  local device = target_device(fname, cfg)
  if type(model) ~= 'table' or type(model.to) ~= 'function' then
    raise(string.format('%s: model must be an mtt.nn module (a table with a :to method), got %s', fname, type(model)))
  end
  local moved = model:to(device)
  return moved or model
end

-- to(cfg, ...) -> the tensors moved to cfg.device (cfg: a setup result or a device name); nil
-- and non-tensor values pass through unchanged (batches may carry info tables).
function M.to(cfg, ...)
  local device = type(cfg) == 'table' and cfg.device or cfg
  if device ~= 'cpu' and device ~= 'cuda' then
    raise(string.format("mtt.device.to: cfg must be a setup result or 'cpu' / 'cuda', got %s", tostring(device)))
  end
  local n = select('#', ...)
  local out = { ... }
  for i = 1, n do
    local v = out[i]
    if tensor.is_tensor(v) and v.device ~= device then out[i] = v:to(device) end
  end
  return unpack(out, 1, n)
end

-- Synchronizes the device (a no-op on the cpu); for timing.
function M.synchronize(cfg)
  local device = type(cfg) == 'table' and cfg.device or cfg or 'cpu'
  if device == 'cuda' then U.check_status(C.mtt_cuda_synchronize()) end
end

return M
