-- mtt: the library a recipe requires (`local mtt = require 'mtt'`).
--
-- Tensors are LuaJIT FFI objects over libmtt's C tensors (mtt.tensor); this module gathers
-- the public functions: creation, math as functions (mtt.matmul...), autograd scopes, the
-- functional namespace mtt.F, optimizers and a few library-wide settings. Dims and indices
-- are 1-based and negative dims count from the end; index tensors (argmax, topk, embedding
-- ids, targets) hold 0-based values, as in torch.
-- LuaJIT load forwarding off before anything is compiled: Debian 12's LuaJIT miscompiles some
-- loads from tables built inside hot loops (see avoid_jit_load_forwarding in tools/mtt/main.c,
-- which does this for the mtt command; this line covers plain luajit).
if jit and jit.opt then jit.opt.start('-fwd') end
local ffi = require 'ffi'
local lib = require 'mtt.ffi'
local C = lib.C
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
require 'mtt.ops'
local creation = require 'mtt.creation'
local random = require 'mtt.random'
local autograd = require 'mtt.autograd'
local F = require 'mtt.functional'
local optim = require 'mtt.optim'

local T = tensor.methods
local mtt = {}

mtt.version = ffi.string(C.mtt_version())
mtt.root = lib.root
mtt.library = lib.library

-- creation
for _, name in ipairs({ 'tensor', 'empty', 'zeros', 'ones', 'full', 'arange', 'rand', 'randn', 'randint',
  'zeros_like', 'ones_like', 'empty_like', 'full_like', 'rand_like', 'randn_like' }) do
  mtt[name] = creation[name]
end
mtt.is_tensor = tensor.is_tensor

-- randomness
mtt.manual_seed = random.manual_seed
mtt.Generator = random.Generator
mtt.default_generator = random.default_generator

-- math as functions: mtt.add(a, b) == a:add(b) (numbers allowed where the method allows them)
for _, name in ipairs({ 'add', 'sub', 'mul', 'div', 'pow', 'neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid',
  'gelu', 'relu', 'clamp', 'masked_fill', 'eq', 'gt', 'lt', 'sum', 'mean', 'max', 'min', 'argmax', 'topk',
  'matmul', 'softmax', 'log_softmax', 'gather', 'index_select', 'reshape', 'transpose', 'permute',
  'squeeze', 'unsqueeze', 'flatten', 'clone', 'detach' }) do
  mtt[name] = T[name]
end
mtt.cat = F.cat

-- autograd
mtt.no_grad = autograd.no_grad
mtt.enable_grad = autograd.enable_grad
mtt.is_grad_enabled = autograd.is_grad_enabled
mtt.set_grad_enabled = autograd.set_grad_enabled

mtt.F = F
mtt.optim = optim
-- mtt.nn: modules and models (lua/mtt/nn/), plus the utils and functional namespaces
mtt.nn = require 'mtt.nn'
mtt.nn.utils = optim.utils
mtt.nn.functional = F
mtt.train = require 'mtt.train' -- mtt.train{...}: the training loop (lua/mtt/train.lua)

-- mtt.threads(n) sets the thread count of OpenMP and OpenBLAS; mtt.threads() reads it.
function mtt.threads(n)
  if n ~= nil then
    if not U.is_int(n) or n < 1 then U.raise('mtt.threads: n must be an integer >= 1, got ' .. tostring(n)) end
    C.mtt_set_num_threads(n)
  end
  return C.mtt_get_num_threads()
end

function mtt.blas_info() return ffi.string(C.mtt_blas_info()) end

mtt.cuda = { available = function() return C.mtt_cuda_available() ~= 0 end }

-- mtt.ops(): {{name =, differentiable =}, ...} for every op the tape knows.
function mtt.ops()
  local list = {}
  for i = 0, C.mtt_op_count() - 1 do
    list[#list + 1] = { name = ffi.string(C.mtt_op_name(i)),
      differentiable = C.mtt_op_is_differentiable(i) ~= 0 }
  end
  return list
end

-- [io] safetensors, archives and files (mtt.io), training checkpoints (mtt.checkpoint), corpora
-- (mtt.data.corpus{...}); mtt.data is a table other data modules add to.
mtt.io = require 'mtt.io'
mtt.checkpoint = require 'mtt.checkpoint'
mtt.data = mtt.data or {}
mtt.data.corpus = require('mtt.data.corpus').new
-- [/io]

mtt.tokenizer = require 'mtt.tokenizer' -- byte-level BPE, GPT-2's (lua/mtt/tokenizer.lua)
mtt.recipe = require 'mtt.recipe' -- phases, model folders, settings, scheduled evaluations (lua/mtt/recipe/)

-- text metrics (mtt.metrics: exact_match, rouge_l as SNI), statistics, reports
mtt.metrics = require 'mtt.metrics'
mtt.stats = require 'mtt.stats' -- correlations with p, bootstrap and t intervals (lua/mtt/stats.lua)
mtt.report = require 'mtt.report' -- reports: markdown, CSV, SVG/PNG plots (lua/mtt/report/)

-- devices and precision (lua/mtt/device.lua): mtt.device.setup{device =, precision =},
-- mtt.device.prepare(model, cfg); torch's names for the f32 matmul precision and the cuda queries.
mtt.device = require 'mtt.device'
mtt.set_float32_matmul_precision = mtt.device.set_float32_matmul_precision
mtt.get_float32_matmul_precision = mtt.device.get_float32_matmul_precision
do
  local cuda_stats = ffi.new('int64_t[4]')
  mtt.cuda.device_count = function() return C.mtt_cuda_device_count() end
  mtt.cuda.get_device_name = function() return ffi.string(C.mtt_cuda_device_info()) end
  mtt.cuda.is_emulated = function() return C.mtt_cuda_is_emulated() ~= 0 end
  mtt.cuda.synchronize = function() U.check_status(C.mtt_cuda_synchronize()) end
  mtt.cuda.empty_cache = function() U.check_status(C.mtt_cuda_empty_cache()) end
  mtt.cuda.host_waits = function() return tonumber(C.mtt_cuda_host_waits()) end
  -- bytes: allocated (in use by tensors), cached (free, kept for reuse), peak allocated, total
  mtt.cuda.memory_stats = function()
    U.check_status(C.mtt_cuda_memory_stats(cuda_stats))
    return { allocated = tonumber(cuda_stats[0]), cached = tonumber(cuda_stats[1]),
      peak_allocated = tonumber(cuda_stats[2]), total = tonumber(cuda_stats[3]) }
  end
end

-- task mixtures (seqio rates, temperature schedules) and instruction-tuning batches
-- with replay (lua/mtt/data/mixture.lua, lua/mtt/data/instruct.lua)
mtt.data.mixture = require 'mtt.data.mixture'
mtt.data.instruct = require 'mtt.data.instruct'

-- task collections, prompt encodings (lua/mtt/tasks.lua)
mtt.tasks = require 'mtt.tasks'

-- evaluations (lua/mtt/eval/): mtt.eval.icl{...} (k-shot loss, acc/acc_norm, generation
-- scored by mtt.metrics), mtt.eval.transfer{...} (fine-tuning transfer on held-out tasks),
-- mtt.eval.transfer_gap, mtt.eval.score (batched log-likelihoods, greedy generation)
mtt.eval = require 'mtt.eval'

-- the REPL's `:` commands (lua/mtt/repl/): mtt.repl.command(':runs'), mtt.repl.run(dir)
mtt.repl = require 'mtt.repl'

-- mtt.bundle: pack, run, verify, unpack recipe bundles (lua/mtt/bundle/); the sandbox
-- (lua/mtt/sandbox.lua) is deliberately not a field: a sandboxed recipe sees this table.
mtt.bundle = require 'mtt.bundle'

return mtt
