-- tools/gpu/gpu_util.lua: what the scripts here share: their key=value arguments and training
-- data made of the repository's own text as bytes (vocabulary 256; the recipes' corpus and
-- tokenizer are built artifacts the GPU machine lacks). Scripts run from the repository root and
-- load it with package.path = 'tools/gpu/?.lua;' .. package.path.
local ffi = require 'ffi'
local mtt = require 'mtt'

local M = {}

-- options(script, defaults, order): defaults overridden by the script's key=value arguments
-- (numbers where they parse as numbers); an unknown key is an error listing the keys of order
function M.options(script, defaults, order)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for _, a in ipairs(arg or {}) do
    local k, v = a:match('^([%w_]+)=(.*)$')
    if not k or o[k] == nil then
      error(script .. ': unknown argument ' .. a .. ' (' .. table.concat(order, '=, ') .. '=)', 0)
    end
    o[k] = tonumber(v) or v
  end
  return o
end

-- byte_text(roots, exts): the files under roots (paths from the root) whose names end in one of
-- exts, in sorted order, joined by newlines: an i32 tensor of their bytes and its length
function M.byte_text(roots, exts)
  local names = {}
  for i, e in ipairs(exts) do names[i] = "-name '*." .. e .. "'" end
  local list = io.popen('find ' .. table.concat(roots, ' ') .. ' -type f \\( ' .. table.concat(names, ' -o ') ..
    ' \\) 2>/dev/null | sort')
  local parts = {}
  for path in list:lines() do
    local f = io.open(path, 'rb')
    if f then
      parts[#parts + 1] = f:read('*a')
      f:close()
    end
  end
  list:close()
  local text = table.concat(parts, '\n')
  local t = mtt.empty(#text, { dtype = 'i32' })
  local p = ffi.cast('int32_t *', t:data_ptr())
  for i = 1, #text do p[i - 1] = text:byte(i) end
  return t, #text
end

-- windows(text, n, T): draw(B, generator) -> idx, targets: B windows of T + 1 tokens at random
-- starts in text (n tokens), as the inputs and the targets shifted by one (both B x T)
function M.windows(text, n, T)
  local offsets = mtt.arange(0, T + 1, 1, { dtype = 'i32' }):view(1, T + 1)
  return function(B, g)
    local starts = mtt.randint(0, n - T - 1, { B, 1 }, { generator = g })
    local seq = text:index_select(1, (starts + offsets):view(-1)):view(B, T + 1)
    return seq:narrow(2, 1, T):contiguous(), seq:narrow(2, 2, T):contiguous()
  end
end

return M
