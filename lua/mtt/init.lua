-- mtt: the library a recipe requires (`local mtt = require 'mtt'`).
--
-- Tensors are LuaJIT FFI objects over libmtt's C tensors (mtt.tensor); this module gathers
-- the public functions: creation, math as functions (mtt.matmul...), autograd scopes, the
-- functional namespace mtt.F, optimizers and a few library-wide settings. Dims and indices
-- are 1-based and negative dims count from the end; index tensors (argmax, topk, embedding
-- ids, targets) hold 0-based values, as in torch.
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

return mtt
