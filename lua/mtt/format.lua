-- mtt.format: tostring(t), in PyTorch's layout: aligned columns, one row per line, "..." for
-- the middle of big tensors, and a suffix with shape, dtype and autograd state.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'

local F = {}
F.threshold = 1000 -- tensors with more elements are summarized
F.edge = 3         -- elements shown at each end of a summarized dim
F.precision = 4

local idx = ffi.new('int64_t[8]')
local out = ffi.new('double[1]')

-- Visits the elements that will be shown, in order; leaf(i) is called per element and
-- returns its text; returns the nested text.
local function layout(t, summarize, leaf, indent)
  local nd = t.ndim
  local function rec(d)
    local n = tonumber(t.dims[d])
    local parts = {}
    local function visit(i)
      idx[d] = i
      parts[#parts + 1] = d == nd - 1 and leaf() or rec(d + 1)
    end
    if summarize and n > 2 * F.edge then
      for i = 0, F.edge - 1 do visit(i) end
      parts[#parts + 1] = '...'
      for i = n - F.edge, n - 1 do visit(i) end
    else
      for i = 0, n - 1 do visit(i) end
    end
    if d == nd - 1 then return '[' .. table.concat(parts, ', ') .. ']' end
    local sep = ',' .. string.rep('\n', nd - d - 2) .. '\n' .. string.rep(' ', indent + d + 1)
    return '[' .. table.concat(parts, sep) .. ']'
  end
  return rec(0)
end

local function num_text(v, style)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  if style == 'int' then return string.format('%d', v) end
  if style == 'whole' then return string.format('%.0f.', v) end
  if style == 'sci' then return string.format('%.' .. F.precision .. 'e', v) end
  return string.format('%.' .. F.precision .. 'f', v)
end

-- 'int' for integer dtypes; floats: 'whole' when every value is integral, 'sci' for a wide
-- or extreme range, else fixed point.
local function choose_style(t, values)
  if t.dtype_id == 2 then return 'int' end
  local whole, maxa, mina = true, 0, math.huge
  for _, v in ipairs(values) do
    if v == v and v ~= math.huge and v ~= -math.huge then
      local a = math.abs(v)
      if v ~= math.floor(v) then whole = false end
      if a > maxa then maxa = a end
      if a > 0 and a < mina then mina = a end
    end
  end
  if whole and maxa < 1e8 then return 'whole' end
  if maxa >= 1e8 or mina < 1e-4 or (mina < math.huge and maxa / mina > 1e3) then return 'sci' end
  return 'fixed'
end

local function suffix(t)
  local s = { 'shape=' .. U.tshape(t), 'dtype=' .. U.dtype_names[t.dtype_id] }
  if t.device_id ~= 0 then s[#s + 1] = 'device=' .. U.device_names[t.device_id] end
  local fn = C.mtt_grad_fn_name(t)
  if fn ~= nil then
    s[#s + 1] = 'grad_fn=' .. ffi.string(fn)
  elseif t.needs_grad ~= 0 then
    s[#s + 1] = 'requires_grad=true'
  end
  return table.concat(s, ', ')
end

function F.tostring(t)
  if t.storage == nil then return 'tensor(<freed>, ' .. suffix(t) .. ')' end
  local src = t
  if t.device_id ~= 0 then
    local p = C.mtt_to_device(t, 0)
    if p == nil then return 'tensor(<unreadable: ' .. U.last_error() .. '>, ' .. suffix(t) .. ')' end
    src = ffi.gc(p[0], C.mtt_tensor_release)
  end
  local prefix = 'tensor('
  local function get()
    if C.mtt_get(src, idx, out) ~= 0 then return 0 / 0 end
    return out[0]
  end
  if src.ndim == 0 then
    local v = get()
    return prefix .. num_text(v, choose_style(src, { v })) .. ', ' .. suffix(t) .. ')'
  end
  if src.nelem == 0 then return prefix .. '[], ' .. suffix(t) .. ')' end
  local summarize = src.nelem > F.threshold
  local values = {}
  layout(src, summarize, function() values[#values + 1] = get(); return '' end, #prefix)
  local style = choose_style(src, values)
  local texts, width = {}, 0
  for i, v in ipairs(values) do
    texts[i] = num_text(v, style)
    if #texts[i] > width then width = #texts[i] end
  end
  local k = 0
  local body = layout(src, summarize, function()
    k = k + 1
    return string.rep(' ', width - #texts[k]) .. texts[k]
  end, #prefix)
  return prefix .. body .. ', ' .. suffix(t) .. ')'
end

return F
