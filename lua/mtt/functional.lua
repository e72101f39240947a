-- mtt.functional (mtt.F): network ops as functions, over the core's fused kernels.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local random = require 'mtt.random'

local T, wrap, arg = tensor.methods, tensor.wrap, tensor.arg
local raise = U.raise

local F = {}

F.relu = function(x) return T.relu(arg(x, 'relu')) end
F.gelu = function(x) return T.gelu(arg(x, 'gelu')) end
F.tanh = function(x) return T.tanh(arg(x, 'tanh')) end
F.sigmoid = function(x) return T.sigmoid(arg(x, 'sigmoid')) end
F.softmax = function(x, dim) return T.softmax(arg(x, 'softmax'), dim) end
F.log_softmax = function(x, dim) return T.log_softmax(arg(x, 'log_softmax'), dim) end

local function opt_tensor(v, fname, what)
  if v ~= nil then arg(v, fname, what) end
  return v
end

-- layer_norm(x, weight, bias[, eps = 1e-5]) over the last dim; weight and bias may be nil.
function F.layer_norm(x, weight, bias, eps)
  arg(x, 'layer_norm', 'input')
  if eps ~= nil and type(eps) ~= 'number' then raise('layer_norm: eps must be a number, got ' .. type(eps)) end
  return wrap(C.mtt_layer_norm(x, opt_tensor(weight, 'layer_norm', 'weight'),
    opt_tensor(bias, 'layer_norm', 'bias'), eps or 1e-5))
end

-- linear(x, weight[, bias]) = x @ weight^T + bias, weight [out, in] as torch stores it.
function F.linear(x, weight, bias)
  arg(x, 'linear', 'input')
  arg(weight, 'linear', 'weight')
  local y = T.matmul(x, T.t(weight))
  if bias ~= nil then y = T.add(y, arg(bias, 'linear', 'bias')) end
  return y
end

-- embedding(indices, weight): rows of weight [V, C] for i32 indices (0-based ids).
function F.embedding(indices, weight)
  arg(indices, 'embedding', 'indices')
  arg(weight, 'embedding', 'weight')
  return wrap(C.mtt_embedding(weight, indices))
end

-- cross_entropy(logits [N, V] or [B, T, V], targets (i32, 0-based)[, {mask =, ignore_index =}]):
-- mean over the positions that count (mask ~= 0 and target ~= ignore_index).
function F.cross_entropy(logits, targets, opts)
  arg(logits, 'cross_entropy', 'logits')
  arg(targets, 'cross_entropy', 'targets')
  local o = options.check('cross_entropy', opts, 'mask:tensor ignore_index:number')
  if o.ignore_index ~= nil and not U.is_int(o.ignore_index) then
    raise('cross_entropy: ignore_index must be an integer, got ' .. tostring(o.ignore_index))
  end
  return wrap(C.mtt_cross_entropy(logits, targets, o.mask, o.ignore_index or -100))
end

-- attention(q, k, v[, {causal = false, scale = 1/sqrt(head dim)}]), q/k/v [..., T, D].
function F.attention(q, k, v, opts)
  arg(q, 'attention', 'q')
  arg(k, 'attention', 'k')
  arg(v, 'attention', 'v')
  local o = options.check('attention', opts, 'causal:boolean scale:number')
  local scale = o.scale
  if scale == nil then
    local d = q.ndim > 0 and tonumber(q.dims[q.ndim - 1]) or 0
    scale = d > 0 and 1 / math.sqrt(d) or 1
  end
  return wrap(C.mtt_attention(q, k, v, o.causal and 1 or 0, scale))
end

-- dropout(x, p[, {training = true, generator =}]): identity when not training or p == 0.
function F.dropout(x, p, opts)
  arg(x, 'dropout', 'input')
  local o = options.check('dropout', opts, 'training:boolean generator:generator')
  if type(p) ~= 'number' or p ~= p or p < 0 or p > 1 then
    raise('dropout: p must be a probability in [0, 1], got ' .. tostring(p))
  end
  if o.training == false or p == 0 then return x end
  return wrap(C.mtt_dropout(x, p, random.gen_ptr(o.generator)))
end

-- cat({tensors}[, dim = 1])
function F.cat(list, dim)
  if type(list) ~= 'table' or tensor.is_tensor(list) then
    raise('cat: expected a table of tensors, got ' .. (tensor.is_tensor(list) and 'a tensor' or type(list)))
  end
  local n = #list
  if n == 0 then raise('cat: expected a non-empty table of tensors') end
  local arr = ffi.new('mtt_tensor *[?]', n)
  for i = 1, n do
    if not tensor.is_tensor(list[i]) then
      raise(string.format('cat: element %d is a %s, expected a tensor', i, type(list[i])))
    end
    arr[i - 1] = list[i]
  end
  local first = list[1]
  local d = U.tdim(first, dim or 1, 'cat')
  return wrap(C.mtt_cat(n, arr, d))
end

return F
