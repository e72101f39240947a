-- mtt.creation: making tensors: from Lua values, filled, ranges and random draws.
-- Options: dtype ('f32' default), device ('cpu'), requires_grad; random ones add generator.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local random = require 'mtt.random'

local wrap_as, is_tensor, T = tensor.wrap_as, tensor.is_tensor, tensor.methods
local raise = U.raise

local M = {}

local BASIC = 'dtype:string device:string requires_grad:boolean'
local RANDOM = BASIC .. ' generator:generator'

local function finish(t, o)
  if o.requires_grad then T.requires_grad(t, true) end
  return t
end

-- dtype and device ids from checked options (defaults f32, cpu)
local function place(o, fname)
  return U.dtype_id(o.dtype or 'f32', fname), U.device_id(o.device or 'cpu', fname)
end

-- ---- mtt.tensor(value[, opts]) ----
-- Shape of a nested table from its first elements; the fill pass checks the rest.
local function infer(value)
  local shape, v = {}, value
  while type(v) == 'table' do
    shape[#shape + 1] = #v
    v = v[1]
  end
  return shape
end

local function path_str(path, depth)
  local s = {}
  for i = 1, depth do s[i] = '[' .. path[i] .. ']' end
  return table.concat(s)
end

function M.tensor(value, opts)
  local o = options.check('mtt.tensor', opts, BASIC)
  if is_tensor(value) then
    local r = T.clone(T.detach(value)) -- a copy that shares nothing with value
    if o.device then r = T.to(r, o.device) end
    if o.dtype then r = wrap_as('mtt.tensor', C.mtt_to_dtype(r, (place(o, 'mtt.tensor')))) end
    return finish(r, o)
  end
  local shape
  if type(value) == 'number' or type(value) == 'boolean' then
    shape = {}
  elseif type(value) == 'table' then
    shape = infer(value)
    if #shape > 8 then
      raise(string.format('mtt.tensor: table nested %d deep, at most 8 dims are supported', #shape))
    end
  else
    raise('mtt.tensor: expected a number, a (nested) table of numbers or a tensor, got ' .. type(value))
  end
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  local buf = ffi.new('double[?]', n > 0 and n or 1)
  local pos, path = 0, {}
  local function fill(v, depth)
    if depth > #shape then
      local tv = type(v)
      if tv == 'number' then buf[pos] = v
      elseif tv == 'boolean' then buf[pos] = v and 1 or 0
      else
        raise(string.format('mtt.tensor: element %s is a %s, expected a number',
          path_str(path, depth - 1), is_tensor(v) and 'tensor' or tv))
      end
      pos = pos + 1
      return
    end
    if type(v) ~= 'table' then
      raise(string.format('mtt.tensor: ragged nested table: element %s is a %s, expected a table of %d',
        path_str(path, depth - 1), type(v), shape[depth]))
    end
    if #v ~= shape[depth] then
      raise(string.format('mtt.tensor: ragged nested table: element %s has %d elements, expected %d (shape %s)',
        depth == 1 and '(top)' or path_str(path, depth - 1), #v, shape[depth], U.shape_str(shape)))
    end
    for i = 1, shape[depth] do
      path[depth] = i
      fill(v[i], depth + 1)
    end
  end
  fill(value, 1)
  local dtype, device = place(o, 'mtt.tensor')
  return finish(wrap_as('mtt.tensor', C.mtt_from_f64(#shape, U.int64s(shape), buf, dtype, device)), o)
end

-- fname(shape...[, opts]) made by make(ndim, int64 sizes, dtype id, device id[, generator]):
-- the random makers (spec RANDOM) also get the generator.
local function maker(fname, spec, make)
  local random_ = spec == RANDOM
  return function(...)
    local shape, opts = U.shape_args(fname, ...)
    local o = options.check(fname, opts, spec)
    local dtype, device = place(o, fname)
    if random_ then
      local gen = random.gen_ptr(o.generator)
      return finish(wrap_as(fname, make(#shape, U.int64s(shape), dtype, device, gen)), o)
    end
    return finish(wrap_as(fname, make(#shape, U.int64s(shape), dtype, device)), o)
  end
end

-- ---- filled ----
M.empty = maker('mtt.empty', BASIC, C.mtt_empty)
M.zeros = maker('mtt.zeros', BASIC, C.mtt_zeros)

local function full(fname, shape, v, o)
  local dtype, device = place(o, fname)
  return finish(wrap_as(fname, C.mtt_full(#shape, U.int64s(shape), v, dtype, device)), o)
end

function M.ones(...)
  local shape, opts = U.shape_args('mtt.ones', ...)
  return full('mtt.ones', shape, 1, options.check('mtt.ones', opts, BASIC))
end

-- mtt.full(shape, value[, opts]); shape is a table or a single size.
function M.full(shape, value, opts)
  if type(shape) == 'number' then shape = { shape } end
  if type(shape) ~= 'table' then raise('mtt.full: shape must be a table of sizes, got ' .. type(shape)) end
  U.check_shape(shape, 'mtt.full')
  if type(value) ~= 'number' then raise('mtt.full: value must be a number, got ' .. type(value)) end
  return full('mtt.full', shape, value, options.check('mtt.full', opts, BASIC))
end

-- *_like(t[, opts]): t's shape, dtype and device unless opts say otherwise.
local function like_opts(fname, t, opts, spec)
  tensor.arg(t, fname)
  local o = options.check(fname, opts, spec)
  local r = {}
  for k, v in pairs(o) do r[k] = v end
  r.dtype = r.dtype or U.dtype_names[t.dtype_id]
  r.device = r.device or U.device_names[t.device_id]
  return U.shape_of(t), r
end

function M.zeros_like(t, opts) return M.zeros(like_opts('mtt.zeros_like', t, opts, BASIC)) end
function M.ones_like(t, opts) return M.ones(like_opts('mtt.ones_like', t, opts, BASIC)) end
function M.empty_like(t, opts) return M.empty(like_opts('mtt.empty_like', t, opts, BASIC)) end
function M.full_like(t, v, opts)
  local shape, o = like_opts('mtt.full_like', t, opts, BASIC)
  return M.full(shape, v, o)
end

-- ---- ranges ----
-- arange(n) or arange(start, stop[, step]); stop is exclusive and values start at 0 as in
-- torch (they are values, not positions).
function M.arange(...)
  local a = { ... }
  local opts
  if type(a[#a]) == 'table' then opts = table.remove(a) end
  local o = options.check('mtt.arange', opts, BASIC)
  for i = 1, #a do
    if type(a[i]) ~= 'number' then
      raise(string.format('mtt.arange: argument %d is a %s, expected a number', i, type(a[i])))
    end
  end
  local start, stop, step
  if #a == 1 then start, stop, step = 0, a[1], 1
  elseif #a == 2 or #a == 3 then start, stop, step = a[1], a[2], a[3] or 1
  else raise('mtt.arange: expected (stop) or (start, stop[, step]), got ' .. #a .. ' numbers') end
  if step == 0 then raise('mtt.arange: step must not be 0') end
  local dtype, device = place(o, 'mtt.arange')
  return finish(wrap_as('mtt.arange', C.mtt_arange(start, stop, step, dtype, device)), o)
end

-- ---- random ----
M.rand = maker('mtt.rand', RANDOM, C.mtt_rand)
M.randn = maker('mtt.randn', RANDOM, C.mtt_randn)

function M.rand_like(t, opts) return M.rand(like_opts('mtt.rand_like', t, opts, RANDOM)) end
function M.randn_like(t, opts) return M.randn(like_opts('mtt.randn_like', t, opts, RANDOM)) end

-- randint(low, high, shape[, opts]): integers in [low, high), i32.
function M.randint(low, high, shape, opts)
  if not U.is_int(low) or not U.is_int(high) then
    raise(string.format('mtt.randint: low and high must be integers, got %s and %s',
      tostring(low), tostring(high)))
  end
  if type(shape) == 'number' then shape = { shape } end
  if type(shape) ~= 'table' then raise('mtt.randint: shape must be a table of sizes, got ' .. type(shape)) end
  U.check_shape(shape, 'mtt.randint')
  local o = options.check('mtt.randint', opts, 'device:string generator:generator')
  local device = U.device_id(o.device or 'cpu', 'mtt.randint')
  local gen = random.gen_ptr(o.generator)
  return wrap_as('mtt.randint', C.mtt_randint(low, high, #shape, U.int64s(shape), device, gen))
end

return M
