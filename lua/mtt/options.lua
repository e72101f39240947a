-- mtt.options: checked option tables. A misspelt option is an error naming the key and the
-- accepted ones, never ignored silently.
--
--   local o = options.check('mtt.zeros', opts, 'dtype:string device:string requires_grad:boolean')
--
-- Types: string, number, boolean, table, function, tensor, generator, any; 'a|b' allows
-- either. The spec string is parsed once and cached.
local ffi = require 'ffi'
local U = require 'mtt.util'

local O = {}
local cache = {}
local tensor_ct -- set by mtt.tensor (ffi.typeof of the tensor struct)

function O.set_tensor_type(ct) tensor_ct = ct end

local function parse(spec)
  local s = { names = {}, types = {} }
  for name, ty in spec:gmatch('([%w_]+):([%w_|]+)') do
    s.names[#s.names + 1] = name
    local allowed = {}
    for t in ty:gmatch('[^|]+') do allowed[t] = true end
    s.types[name] = { set = allowed, text = ty:gsub('|', ' or ') }
  end
  s.accepted = table.concat(s.names, ', ')
  return s
end

local function type_of(v)
  local t = type(v)
  if t == 'cdata' and tensor_ct and ffi.istype(tensor_ct, v) then return 'tensor' end
  if t == 'table' and getmetatable(v) and getmetatable(v).__name == 'mtt.Generator' then return 'generator' end
  return t
end

-- Returns opts (or an empty table) after checking every key and value type.
function O.check(fname, opts, spec)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then
    U.raise(string.format('%s: options must be a table, got %s', fname, type_of(opts)))
  end
  local s = cache[spec]
  if not s then s = parse(spec); cache[spec] = s end
  for k, v in pairs(opts) do
    if type(k) ~= 'string' then
      U.raise(string.format('%s: option keys must be names, got %s key %s (accepted: %s)',
        fname, type(k), tostring(k), s.accepted))
    end
    local ty = s.types[k]
    if not ty then
      U.raise(string.format("%s: unknown option '%s' (accepted: %s)", fname, k, s.accepted))
    end
    local vt = type_of(v)
    if not (ty.set.any or ty.set[vt]) then
      U.raise(string.format("%s: option '%s' must be a %s, got %s", fname, k, ty.text, vt))
    end
  end
  return opts
end

return O
