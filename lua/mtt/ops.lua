-- mtt.ops: tensor methods that compute: arithmetic (also behind the operators), elementwise
-- math, comparisons, reductions, matmul/softmax/indexing and the in-place forms.
-- Every one is a thin call into libmtt; shapes are checked by the core, dims converted here.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'

local T, wrap, is_tensor = tensor.methods, tensor.wrap, tensor.is_tensor
local raise, check_status = U.raise, U.check_status
local arg = tensor.arg

local function bad(fname, ...)
  local kinds = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    kinds[i] = is_tensor(v) and 'tensor' or type(v)
  end
  raise(string.format('%s: expected tensors or numbers, got (%s)', fname, table.concat(kinds, ', ')))
end

local none = ffi.new('int64_t[1]')
-- A 0-d tensor holding v with like's dtype and device (for scalar forms the core lacks).
local function scalar_like(v, like)
  return wrap(C.mtt_full(0, none, v, like.dtype_id, like.device_id))
end

-- ---- arithmetic: tensor or number on either side ----
-- T[name](a, b): tt(a, b) for two tensors, ts(a, b) for a tensor and a number, st(b, a) for a
-- number and a tensor.
local function binary(name, tt, ts, st)
  T[name] = function(a, b)
    if is_tensor(a) then
      if is_tensor(b) then return wrap(tt(a, b)) end
      if type(b) == 'number' then return wrap(ts(a, b)) end
    elseif type(a) == 'number' and is_tensor(b) then
      return wrap(st(b, a))
    end
    bad(name, a, b)
  end
end
binary('add', C.mtt_add, C.mtt_add_scalar, C.mtt_add_scalar)
binary('sub', C.mtt_sub, function(a, b) return C.mtt_add_scalar(a, -b) end, C.mtt_rsub_scalar)
binary('mul', C.mtt_mul, C.mtt_mul_scalar, C.mtt_mul_scalar)
-- a true division by a number (x * (1/3) is not x / 3 in floating point)
binary('div', C.mtt_div, function(a, b) return C.mtt_div(a, scalar_like(b, a)) end, C.mtt_rdiv_scalar)

function T.pow(a, p)
  if is_tensor(a) and type(p) == 'number' then return wrap(C.mtt_pow_scalar(a, p)) end
  if is_tensor(p) then raise('pow: the exponent must be a number (tensor exponents are not supported)') end
  bad('pow', a, p)
end

-- ---- elementwise math ----
for _, name in ipairs({ 'neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'gelu', 'relu' }) do
  local f = C['mtt_' .. name]
  T[name] = function(t)
    arg(t, name)
    return wrap(f(t))
  end
end

function T.clamp(t, lo, hi)
  if lo ~= nil and type(lo) ~= 'number' then raise('clamp: lo must be a number or nil, got ' .. type(lo)) end
  if hi ~= nil and type(hi) ~= 'number' then raise('clamp: hi must be a number or nil, got ' .. type(hi)) end
  return wrap(C.mtt_clamp(t, lo or -math.huge, hi or math.huge))
end

function T.masked_fill(t, mask, v)
  arg(mask, 'masked_fill', 'mask')
  if type(v) ~= 'number' then raise('masked_fill: value must be a number, got ' .. type(v)) end
  return wrap(C.mtt_masked_fill(t, mask, v))
end

for _, name in ipairs({ 'eq', 'gt', 'lt' }) do
  local f = C['mtt_' .. name]
  T[name] = function(a, b)
    arg(a, name)
    if type(b) == 'number' then b = scalar_like(b, a) end
    if not is_tensor(b) then bad(name, a, b) end
    return wrap(f(a, b))
  end
end

-- ---- in place (return t) ----
function T.add_(t, other, alpha)
  alpha = alpha or 1
  if is_tensor(other) then check_status(C.mtt_add_(t, other, alpha))
  elseif type(other) == 'number' then check_status(C.mtt_add_scalar_(t, other * alpha))
  else bad('add_', t, other) end
  return t
end

function T.sub_(t, other, alpha) return T.add_(t, other, -(alpha or 1)) end

function T.mul_(t, other)
  if is_tensor(other) then check_status(C.mtt_mul_(t, other))
  elseif type(other) == 'number' then check_status(C.mtt_mul_scalar_(t, other))
  else bad('mul_', t, other) end
  return t
end

function T.fill_(t, v)
  if type(v) ~= 'number' then raise('fill_: value must be a number, got ' .. type(v)) end
  check_status(C.mtt_fill_(t, v))
  return t
end

function T.zero_(t)
  check_status(C.mtt_zero_(t))
  return t
end

function T.copy_(t, src)
  arg(src, 'copy_', 'source')
  check_status(C.mtt_copy_(t, src))
  return t
end

-- ---- reductions ----
local function keep(k, fname)
  if k == nil then return 0 end
  if type(k) ~= 'boolean' then raise(fname .. ': keepdim must be a boolean, got ' .. type(k)) end
  return k and 1 or 0
end

-- dim may be nil (all elements), a dim, or a table of dims (reduced from the last one).
local function reducer(name, f_dim, f_all)
  return function(t, dim, keepdim)
    arg(t, name)
    if dim == nil then return wrap(f_all(t)) end
    local kd = keep(keepdim, name)
    if type(dim) == 'table' then
      local ks = {}
      for i, d in ipairs(dim) do ks[i] = U.tdim(t, d, name) end
      table.sort(ks, function(x, y) return x > y end)
      local r = t
      for _, k in ipairs(ks) do r = wrap(f_dim(r, k, kd)) end
      return r
    end
    return wrap(f_dim(t, U.tdim(t, dim, name), kd))
  end
end
T.sum = reducer('sum', C.mtt_sum, C.mtt_sum_all)
T.mean = reducer('mean', C.mtt_mean, C.mtt_mean_all)

-- max() -> the largest element; max(dim[, keepdim]) -> values, indices (0-based i32, as
-- torch returns them).
function T.max(t, dim, keepdim)
  arg(t, 'max')
  if dim == nil then return wrap(C.mtt_max_all(t)) end
  local k, kd = U.tdim(t, dim, 'max'), keep(keepdim, 'max')
  return wrap(C.mtt_max(t, k, kd)), wrap(C.mtt_argmax(t, k, kd))
end

function T.min(t, dim, keepdim)
  local n = T.neg(t)
  if dim == nil then return T.neg(T.max(n)) end
  local v, i = T.max(n, dim, keepdim)
  return T.neg(v), i
end

-- argmax() -> index into the flattened tensor; argmax(dim[, keepdim]). 0-based i32.
function T.argmax(t, dim, keepdim)
  arg(t, 'argmax')
  if dim == nil then return wrap(C.mtt_argmax(T.reshape(t, -1), 0, 0)) end
  return wrap(C.mtt_argmax(t, U.tdim(t, dim, 'argmax'), keep(keepdim, 'argmax')))
end

-- topk(k[, dim = -1[, largest = true]]) -> values (differentiable), indices (0-based i32).
local pair = ffi.new('mtt_tensor *[2]')
function T.topk(t, k, dim, largest)
  arg(t, 'topk')
  if not U.is_int(k) then raise('topk: k must be an integer, got ' .. tostring(k)) end
  if largest ~= nil and type(largest) ~= 'boolean' then raise('topk: largest must be a boolean') end
  local d = U.tdim(t, dim or -1, 'topk')
  pair[0], pair[1] = nil, nil
  check_status(C.mtt_topk(t, k, d, largest == false and 0 or 1, pair, pair + 1))
  local v, i = pair[0], pair[1]
  pair[0], pair[1] = nil, nil
  return wrap(v), wrap(i)
end

-- ---- linear algebra, softmax, indexing ----
function T.matmul(a, b)
  arg(a, 'matmul', 'first argument')
  arg(b, 'matmul', 'second argument')
  return wrap(C.mtt_matmul(a, b))
end

-- softmax over any dim: the core works on the last one, so another dim goes through a
-- transpose and back.
local function along_last(name, f)
  return function(t, dim)
    arg(t, name)
    if dim == nil then raise(name .. ': dim is required (e.g. -1 for the last dim)') end
    local k, last = U.tdim(t, dim, name), t.ndim - 1
    if k == last then return wrap(f(t, k)) end
    local moved = wrap(C.mtt_transpose(t, k, last))
    return wrap(C.mtt_transpose(wrap(f(moved, last)), k, last))
  end
end
T.softmax = along_last('softmax', C.mtt_softmax)
T.log_softmax = along_last('log_softmax', C.mtt_log_softmax)

function T.gather(t, dim, index)
  arg(index, 'gather', 'index')
  return wrap(C.mtt_gather(t, U.tdim(t, dim, 'gather'), index))
end

function T.index_select(t, dim, index)
  arg(index, 'index_select', 'index')
  return wrap(C.mtt_index_select(t, U.tdim(t, dim, 'index_select'), index))
end

return { scalar_like = scalar_like }
