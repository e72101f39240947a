-- mtt.tensor: the tensor type seen from Lua, an ffi.metatype over the C struct mtt_tensor.
--
-- A Lua tensor is a reference (`mtt_tensor &`) to the C struct, not a pointer: indexing a
-- pointer with a number is pointer arithmetic in LuaJIT, while a reference sends t[i] to our
-- __index. Each one owns one C reference, released by ffi.gc when Lua collects it. Struct
-- fields (t.ndim, t.dims, t.nelem...) read straight from C; everything else (methods and the
-- properties dtype, device, grad, grad_fn, is_leaf, grad_required) goes through __index.
-- Methods are added to T by the other modules (ops, autograd, format...).
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local options = require 'mtt.options'

local raise, check_status = U.raise, U.check_status

local M = {}
local T = {}      -- methods
local props = {}  -- computed read-only fields
M.methods, M.props = T, props

local ct = ffi.typeof('mtt_tensor')
M.ctype = ct
options.set_tensor_type(ct)

-- Lua's collector sees a tensor as a few bytes and would let GBs of C buffers pile up
-- between its cycles (a loop making 8 MB temporaries reached 2.4 GB). So every tensor handed
-- to Lua counts its size, and after M.gc_every bytes (or 4x the Lua heap, if larger) a full
-- collection runs and releases the unreachable ones.
M.gc_every = 256 * 2 ^ 20
local pending = 0
local elem_size = { [0] = 4, 8, 4, 2, 2 }
local function account(p)
  pending = pending + tonumber(p.nelem) * (elem_size[p.dtype_id] or 8)
  if pending > M.gc_every and pending > 4096 * collectgarbage('count') then
    pending = 0
    collectgarbage()
  end
end

local release = C.mtt_tensor_release
-- New reference from C -> Lua tensor (NULL -> error with the core's message).
local function wrap(p)
  if p == nil then raise(U.last_error()) end
  account(p)
  return ffi.gc(p[0], release)
end
M.wrap = wrap

-- wrap for functions whose C call may fail in code that does not know the op (e.g. an
-- allocation): the message gets the Lua function's name in front if it lacks one.
function M.wrap_as(fname, p)
  if p == nil then
    local msg = U.last_error()
    if not msg:find('^[%w_.:]+: ') then msg = fname .. ': ' .. msg end
    raise(msg)
  end
  account(p)
  return ffi.gc(p[0], release)
end

local function is_tensor(v) return type(v) == 'cdata' and ffi.istype(ct, v) end
M.is_tensor = is_tensor

function M.arg(v, fname, what)
  if not is_tensor(v) then
    raise(string.format('%s: %s must be a tensor, got %s', fname, what or 'argument', type(v)))
  end
  return v
end
local arg = M.arg

-- ---- metatype ----
-- Metamethods dispatch through T at call time, so later modules can define them.
local index_get, index_set
local mt = {
  __index = function(t, k)
    local m = T[k]
    if m ~= nil then return m end
    local p = props[k]
    if p then return p(t) end
    if type(k) == 'number' or type(k) == 'table' then return index_get(t, k) end
    raise(string.format("tensor: no method or field '%s'", tostring(k)))
  end,
  __newindex = function(t, k, v)
    if type(k) == 'number' or type(k) == 'table' then return index_set(t, k, v) end
    if k == 'grad' then return T.set_grad(t, v) end
    raise(string.format("tensor: cannot set '%s'", tostring(k)))
  end,
  __add = function(a, b) return T.add(a, b) end,
  __sub = function(a, b) return T.sub(a, b) end,
  __mul = function(a, b) return T.mul(a, b) end,
  __div = function(a, b) return T.div(a, b) end,
  __pow = function(a, b) return T.pow(a, b) end,
  __unm = function(a) return T.neg(a) end,
  __len = function(t)
    if t.ndim == 0 then raise('tensor: # of a 0-d tensor') end
    return tonumber(t.dims[0])
  end,
  __tostring = function(t) return require('mtt.format').tostring(t) end,
}
ffi.metatype(ct, mt)

-- ---- properties ----
props.dtype = function(t) return U.dtype_names[t.dtype_id] end
props.device = function(t) return U.device_names[t.device_id] end
props.is_leaf = function(t) return t.grad_node == nil end
props.grad_required = function(t) return t.needs_grad ~= 0 end
props.grad = function(t)
  local g = C.mtt_grad(t)
  if g == nil then return nil end
  return ffi.gc(g[0], release)
end
props.grad_fn = function(t)
  local s = C.mtt_grad_fn_name(t)
  if s == nil then return nil end
  return ffi.string(s)
end

-- ---- sizes and elements ----
function T.shape(t) return U.shape_of(t) end
function T.dim(t) return t.ndim end
function T.numel(t) return tonumber(t.nelem) end
function T.size(t, d)
  if d == nil then return U.shape_of(t) end
  return tonumber(t.dims[U.tdim(t, d, 'size')])
end
function T.stride(t, d)
  if d == nil then
    local s = {}
    for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.strides[i]) end
    return s
  end
  return tonumber(t.strides[U.tdim(t, d, 'stride')])
end
function T.is_contiguous(t) return C.mtt_is_contiguous(t) ~= 0 end
function T.data_ptr(t) return C.mtt_data_ptr(t) end
function T.element_size(t) return tonumber(C.mtt_dtype_size(t.dtype_id)) end

local dbl = ffi.new('double[1]')
function T.item(t)
  check_status(C.mtt_item(t, dbl))
  return dbl[0]
end

-- Nested Lua tables (a number for a 0-d tensor).
function T.totable(t)
  local n = tonumber(t.nelem)
  local buf = ffi.new('double[?]', n > 0 and n or 1)
  check_status(C.mtt_to_f64(t, buf, n))
  if t.ndim == 0 then return buf[0] end
  local shape, pos = U.shape_of(t), 0
  local function build(d)
    local out = {}
    if d == #shape then
      for i = 1, shape[d] do out[i] = buf[pos]; pos = pos + 1 end
    else
      for i = 1, shape[d] do out[i] = build(d + 1) end
    end
    return out
  end
  return build(1)
end
T.tolist = T.totable

-- Frees the data now instead of at collection; later use is an error.
function T.free(t) check_status(C.mtt_tensor_free_data(t)) end

-- ---- views ----
local function sizes(fname, ...)
  local first = ...
  if type(first) == 'table' then return first end
  local s = { ... }
  for i = 1, select('#', ...) do
    if type(s[i]) ~= 'number' then
      raise(string.format('%s: size %d is a %s, expected an integer', fname, i, type(s[i])))
    end
  end
  return s
end

-- Copies shape, resolving one -1 against t's element count.
local function infer_shape(t, shape, fname)
  U.check_shape(shape, fname, true)
  local out, neg, prod = {}, nil, 1
  for i = 1, #shape do
    out[i] = shape[i]
    if shape[i] == -1 then
      if neg then raise(string.format('%s: only one size may be -1, got %s', fname, U.shape_str(shape))) end
      neg = i
    else
      prod = prod * shape[i]
    end
  end
  local n = tonumber(t.nelem)
  if neg then
    if prod == 0 or n % prod ~= 0 then
      raise(string.format('%s: shape %s is invalid for a tensor of shape %s (%d elements)',
        fname, U.shape_str(shape), U.tshape(t), n))
    end
    out[neg] = n / prod
  end
  return out
end

function T.view(t, ...)
  local s = infer_shape(t, sizes('view', ...), 'view')
  return wrap(C.mtt_view(t, #s, U.int64s(s)))
end

function T.reshape(t, ...)
  local s = infer_shape(t, sizes('reshape', ...), 'reshape')
  return wrap(C.mtt_reshape(t, #s, U.int64s(s)))
end

function T.permute(t, ...)
  local d = sizes('permute', ...)
  local n = t.ndim
  if #d ~= n then
    raise(string.format('permute: %d dims given for a tensor of shape %s (%d dims)', #d, U.tshape(t), n))
  end
  local a, seen = ffi.new('int[?]', n > 0 and n or 1), {}
  for i = 1, n do
    local k = U.tdim(t, d[i], 'permute')
    if seen[k] then raise(string.format('permute: dim %d appears twice in %s', k + 1, U.shape_str(d))) end
    seen[k] = true
    a[i - 1] = k
  end
  return wrap(C.mtt_permute(t, a))
end

function T.transpose(t, d1, d2)
  return wrap(C.mtt_transpose(t, U.tdim(t, d1, 'transpose'), U.tdim(t, d2, 'transpose')))
end

function T.t(t)
  if t.ndim ~= 2 then raise('t: expects a 2-D tensor, got shape ' .. U.tshape(t)) end
  return wrap(C.mtt_transpose(t, 0, 1))
end

-- expand(...): -1 keeps a size; new dims may be added in front.
function T.expand(t, ...)
  local s = sizes('expand', ...)
  U.check_shape(s, 'expand', true)
  local out, lead = {}, #s - t.ndim
  for i = 1, #s do
    out[i] = s[i]
    if s[i] == -1 then
      if i <= lead then raise('expand: -1 is not allowed for a new leading dim, got ' .. U.shape_str(s)) end
      out[i] = tonumber(t.dims[i - lead - 1])
    end
  end
  return wrap(C.mtt_expand(t, #out, U.int64s(out)))
end

-- squeeze(d) removes dim d (of size 1); squeeze() removes every size-1 dim.
function T.squeeze(t, d)
  if d ~= nil then return wrap(C.mtt_squeeze(t, U.tdim(t, d, 'squeeze'))) end
  local r = t
  for k = t.ndim - 1, 0, -1 do
    if t.dims[k] == 1 then r = wrap(C.mtt_squeeze(r, k)) end
  end
  return r == t and wrap(C.mtt_view(t, t.ndim, t.dims)) or r
end

-- unsqueeze(d): the new dim's position in the result (1..ndim+1, or negative: -1 = last).
function T.unsqueeze(t, d)
  return wrap(C.mtt_unsqueeze(t, U.dim0(d, t.ndim + 1, 'unsqueeze', t)))
end

-- flatten([start=1[, stop=-1]]): merges dims start..stop.
function T.flatten(t, start, stop)
  if t.ndim == 0 then return T.reshape(t, 1) end
  local a = U.tdim(t, start or 1, 'flatten')
  local b = U.tdim(t, stop or -1, 'flatten')
  local s = {}
  for k = 0, a - 1 do s[#s + 1] = tonumber(t.dims[k]) end
  local m = 1
  for k = a, b do m = m * tonumber(t.dims[k]) end
  s[#s + 1] = m
  for k = b + 1, t.ndim - 1 do s[#s + 1] = tonumber(t.dims[k]) end
  return wrap(C.mtt_reshape(t, #s, U.int64s(s)))
end

function T.contiguous(t) return wrap(C.mtt_contiguous(t)) end
function T.clone(t) return wrap(C.mtt_clone(t)) end
function T.detach(t) return wrap(C.mtt_detach(t)) end

-- 1-based position (negative from the end) -> 0-based, checked against size n.
local function position(i, n, fname, dim, t)
  if not U.is_int(i) or i == 0 or i > n or i < -n then
    raise(string.format('%s: index %s out of range for dim %d of size %d (tensor of shape %s)',
      fname, tostring(i), dim, n, U.tshape(t)))
  end
  return i > 0 and i - 1 or n + i
end

function T.select(t, d, i)
  local k = U.tdim(t, d, 'select')
  return wrap(C.mtt_select(t, k, position(i, tonumber(t.dims[k]), 'select', k + 1, t)))
end

function T.narrow(t, d, start, length)
  local k = U.tdim(t, d, 'narrow')
  local n = tonumber(t.dims[k])
  local s = start == n + 1 and n or position(start, n, 'narrow', k + 1, t)
  if not U.is_int(length) or length < 0 or s + length > n then
    raise(string.format('narrow: start %s length %s do not fit dim %d of size %d (tensor of shape %s)',
      tostring(start), tostring(length), k + 1, n, U.tshape(t)))
  end
  return wrap(C.mtt_slice(t, k, s, s + length, 1))
end

-- slice(dim, start, stop[, step]): stop inclusive, both may be negative, clamped like
-- string.sub (an empty range gives an empty tensor).
function T.slice(t, d, start, stop, step)
  local k = U.tdim(t, d, 'slice')
  local n = tonumber(t.dims[k])
  start, stop, step = start or 1, stop or -1, step or 1
  for _, v in ipairs({ start, stop, step }) do
    if not U.is_int(v) then raise('slice: start, stop and step must be integers, got ' .. tostring(v)) end
  end
  if step < 1 then raise('slice: step must be >= 1, got ' .. step) end
  if start < 0 then start = n + start + 1 end
  if stop < 0 then stop = n + stop + 1 end
  if start < 1 then start = 1 end
  if stop > n then stop = n end
  if stop < start then stop = start - 1 end
  return wrap(C.mtt_slice(t, k, start - 1, stop, step))
end

-- ---- t[i], t[i] = v, t[{i, j}] ----
local idx64 = ffi.new('int64_t[8]')
local function full_index(t, key)
  if #key ~= t.ndim then return nil end
  for j = 1, #key do idx64[j - 1] = position(key[j], tonumber(t.dims[j - 1]), 'index', j, t) end
  return idx64
end

index_get = function(t, key)
  if t.ndim == 0 then raise('index: cannot index a 0-d tensor (use t:item())') end
  if type(key) == 'table' then
    if full_index(t, key) then
      check_status(C.mtt_get(t, idx64, dbl))
      return dbl[0]
    end
    local r = t
    for j = 1, #key do r = T.select(r, 1, key[j]) end
    return r
  end
  if t.ndim == 1 then
    idx64[0] = position(key, tonumber(t.dims[0]), 'index', 1, t)
    check_status(C.mtt_get(t, idx64, dbl))
    return dbl[0]
  end
  return T.select(t, 1, key)
end

index_set = function(t, key, v)
  if t.ndim == 0 then raise('index: cannot index a 0-d tensor (use t:fill_(v))') end
  local idx
  if type(key) == 'table' then
    idx = full_index(t, key)
  elseif t.ndim == 1 then
    idx64[0] = position(key, tonumber(t.dims[0]), 'index', 1, t)
    idx = idx64
  end
  if idx and type(v) == 'number' then return check_status(C.mtt_set(t, idx, v)) end
  local sub = t
  for _, i in ipairs(type(key) == 'table' and key or { key }) do sub = T.select(sub, 1, i) end
  if type(v) == 'number' then
    T.fill_(sub, v)
  elseif is_tensor(v) then
    T.copy_(sub, v)
  elseif type(v) == 'table' then
    T.copy_(sub, require('mtt.creation').tensor(v, { dtype = U.dtype_names[t.dtype_id] }))
  else
    raise('index: cannot assign a ' .. type(v) .. ' to tensor elements (expected a number, table or tensor)')
  end
end

-- ---- dtype and device ----
function T.to(t, what)
  local dtype, device
  if type(what) == 'string' then
    if U.dtype_ids[what] then dtype = what
    elseif U.device_ids[what] then device = what
    else
      raise(string.format("to: unknown dtype or device '%s' (accepted: f32, f64, i32, bf16, f16, cpu, cuda)", what))
    end
  else
    local o = options.check('to', what, 'dtype:string device:string')
    dtype, device = o.dtype, o.device
  end
  local r = t
  if device then r = wrap(C.mtt_to_device(r, U.device_id(device, 'to'))) end
  if dtype then r = wrap(C.mtt_to_dtype(r, U.dtype_id(dtype, 'to'))) end
  return r
end
function T.float(t) return wrap(C.mtt_to_dtype(t, 0)) end
function T.double(t) return wrap(C.mtt_to_dtype(t, 1)) end
function T.int(t) return wrap(C.mtt_to_dtype(t, 2)) end

-- ---- autograd on a tensor ----
function T.requires_grad(t, flag)
  if flag == nil then flag = true end
  if type(flag) ~= 'boolean' then raise('requires_grad: flag must be a boolean, got ' .. type(flag)) end
  check_status(C.mtt_set_requires_grad(t, flag and 1 or 0))
  return t
end
T.requires_grad_ = T.requires_grad

function T.backward(t, grad)
  if grad ~= nil then arg(grad, 'backward', 'grad') end
  check_status(C.mtt_backward(t, grad))
end

function T.set_grad(t, g)
  if g ~= nil then arg(g, 'set_grad', 'grad') end
  check_status(C.mtt_set_grad(t, g))
  return t
end
function T.zero_grad(t) return T.set_grad(t, nil) end

return M
