-- mtt.util: what every binding module shares: C errors turned into Lua errors that point at
-- the caller's line, dtype and device names, 1-based dims and shape arguments.
local ffi = require 'ffi'
local lib = require 'mtt.ffi'
local C = lib.C

local U = {}

-- Source prefix of the package's own files ("@/root/lua/mtt/"): errors are reported at the
-- first frame outside it, so that a message points at the user's line whatever the depth of
-- the binding code in between.
local pkg = debug.getinfo(1, 'S').source:match('^(@.*/)[^/]*$') or '@lua/mtt/'

function U.raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, 'S')
    if not info then level = 0; break end
    if info.source:sub(1, #pkg) ~= pkg then break end
    level = level + 1
  end
  error(msg, level)
end
local raise = U.raise

function U.last_error()
  local msg = C.mtt_last_error()
  if msg == nil then return 'unknown error' end
  msg = ffi.string(msg)
  return msg ~= '' and msg or 'unknown error'
end

-- A tensor pointer returned by C: NULL becomes a Lua error with the core's message.
function U.check(p)
  if p == nil then raise(U.last_error()) end
  return p
end

function U.check_status(rc)
  if rc ~= 0 then raise(U.last_error()) end
end

-- ---- dtypes and devices ----
U.dtype_names = { [0] = 'f32', 'f64', 'i32', 'bf16', 'f16' }
U.dtype_ids = { f32 = 0, f64 = 1, i32 = 2, bf16 = 3, f16 = 4 }
U.device_names = { [0] = 'cpu', 'cuda' }
U.device_ids = { cpu = 0, cuda = 1 }

function U.dtype_id(name, fname)
  local id = U.dtype_ids[name]
  if not id then
    raise(string.format("%s: unknown dtype '%s' (accepted: f32, f64, i32, bf16, f16)", fname, tostring(name)))
  end
  return id
end

function U.device_id(name, fname)
  local id = U.device_ids[name]
  if not id then
    raise(string.format("%s: unknown device '%s' (accepted: cpu, cuda)", fname, tostring(name)))
  end
  return id
end

-- ---- shapes ----
function U.shape_of(t)
  local s = {}
  for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.dims[i]) end
  return s
end

function U.shape_str(s)
  local parts = {}
  for i = 1, #s do parts[i] = tostring(s[i]) end
  return '[' .. table.concat(parts, ',') .. ']'
end

function U.tshape(t) return U.shape_str(U.shape_of(t)) end

function U.is_int(v)
  return type(v) == 'number' and v == math.floor(v) and v > -math.huge and v < math.huge
end

-- Checks a list of sizes; allow_neg1 admits -1 (view, reshape, expand).
function U.check_shape(shape, fname, allow_neg1)
  if #shape > 8 then
    raise(string.format('%s: %d dims given, at most 8 are supported', fname, #shape))
  end
  for i = 1, #shape do
    local v = shape[i]
    if type(v) ~= 'number' then
      raise(string.format('%s: size %d of the shape is a %s, expected an integer', fname, i, type(v)))
    end
    if not U.is_int(v) or (v < 0 and not (allow_neg1 and v == -1)) then
      local shown = {}
      for j = 1, #shape do shown[j] = type(shape[j]) == 'number' and shape[j] or '?' end
      raise(string.format('%s: invalid size %s at position %d of shape %s (sizes are integers >= 0)',
        fname, tostring(v), i, U.shape_str(shown)))
    end
  end
  return shape
end

-- int64_t[] holding the sizes (a fresh array: C may be called with several of them).
function U.int64s(list)
  local n = #list
  local a = ffi.new('int64_t[?]', n > 0 and n or 1)
  for i = 1, n do a[i - 1] = list[i] end
  return a
end

-- (2, 3, opts) or ({2, 3}, opts) -> shape, opts. The shape may also be empty (a 0-d tensor).
function U.shape_args(fname, ...)
  local n = select('#', ...)
  local first = ...
  local shape, opts
  if type(first) == 'table' then
    shape = first
    if n > 2 then raise(fname .. ': expected (shape table[, options]), got extra arguments') end
    opts = select(2, ...)
  else
    shape = {}
    for i = 1, n do
      local v = select(i, ...)
      if type(v) == 'table' then
        if i ~= n then raise(fname .. ': the options table must be the last argument') end
        opts = v
      elseif type(v) == 'number' then
        shape[#shape + 1] = v
      else
        raise(string.format('%s: size %d is a %s, expected an integer', fname, i, type(v)))
      end
    end
  end
  if opts ~= nil and type(opts) ~= 'table' then
    raise(string.format('%s: options must be a table, got %s', fname, type(opts)))
  end
  return U.check_shape(shape, fname), opts
end

-- ---- dims: 1-based, negative from the end ----
-- Returns the 0-based dim for a tensor of ndim dims (ndim + 1 for unsqueeze-like calls); t
-- (optional) only names the shape in the error message.
function U.dim0(d, ndim, fname, t)
  if not U.is_int(d) or d == 0 or d > ndim or d < -ndim then
    local range = ndim > 0 and string.format('1..%d or -%d..-1', ndim, ndim) or 'none'
    raise(string.format('%s: dim %s out of range for a tensor of shape %s (valid: %s)',
      fname, tostring(d), t and U.tshape(t) or '?', range))
  end
  return d > 0 and d - 1 or ndim + d
end

function U.tdim(t, d, fname)
  return U.dim0(d, t.ndim, fname, t)
end

return U
