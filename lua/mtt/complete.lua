-- mtt.complete: Tab-completion candidates for the REPL (tools/mtt/repl.c).
--   complete('mtt.ze') -> {'mtt.zeros', 'mtt.zeros_like'}; complete('t:sh') -> {'t:shape'}
--   complete(word, env, line): line is the text before the cursor; on a `:` command line the
--   candidates are command names, then the command's own (runs, paths, metric keys, tasks).
-- Walks only plain tables (rawget), so completing never runs user code; a tensor offers its
-- methods (after ':' or '.') and properties (after '.').
local ffi = require 'ffi'

local keywords = { 'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'goto', 'if',
  'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until', 'while' }

local function tensor_keys(v, with_props)
  local ok, tensor = pcall(require, 'mtt.tensor')
  if not ok or not ffi.istype(tensor.ctype, v) then return nil end
  local keys = {}
  for k in pairs(tensor.methods) do keys[#keys + 1] = k end
  if with_props then
    for k in pairs(tensor.props) do keys[#keys + 1] = k end
    for _, k in ipairs({ 'ndim', 'nelem', 'dims', 'strides', 'offset' }) do keys[#keys + 1] = k end
  end
  return keys
end

local function table_keys(v)
  local keys, seen, depth = {}, {}, 0
  while type(v) == 'table' and depth < 8 do
    for k in next, v do
      if type(k) == 'string' and not seen[k] then seen[k] = true; keys[#keys + 1] = k end
    end
    local mt = getmetatable(v)
    v = type(mt) == 'table' and rawget(mt, '__index') or nil
    depth = depth + 1
  end
  return keys
end

-- Candidates on a ':' command line. The REPL replaces only `word` (the text after the last
-- word break, e.g. '/'), so each full candidate keeps the part the word replaces.
local function complete_command(word, line)
  local ok, list = pcall(function() return require('mtt.repl').complete(line) end)
  if not ok then return {} end
  local arg = line:match('(%S*)$')
  local keep = #arg - #word -- characters of arg before word
  local out = {}
  for _, c in ipairs(list) do
    if keep >= 0 and c:sub(keep + 1, keep + #word) == word then out[#out + 1] = c:sub(keep + 1) end
  end
  return out
end

return function(word, env, line)
  if type(line) == 'string' and line:match('^%s*:[%a]') then return complete_command(word, line) end
  env = env or _G
  local base, sep, prefix = word:match('^(.-)([%.:])([%w_]*)$')
  local obj, keys
  if base then
    if not base:match('^[%a_][%w_]*[%w_%.]*$') then return {} end
    obj = env
    for part in base:gmatch('[^%.]+') do
      if type(obj) ~= 'table' then return {} end
      obj = rawget(obj, part)
    end
    if type(obj) == 'string' then obj = string end
    keys = tensor_keys(obj, sep == '.') or table_keys(obj)
  else
    prefix, base, sep = word, '', ''
    keys = table_keys(env)
    for _, k in ipairs(keywords) do keys[#keys + 1] = k end
  end
  local out, seen = {}, {}
  for _, k in ipairs(keys) do
    if k:sub(1, #prefix) == prefix and k:match('^[%a_][%w_]*$') and not seen[k] then
      seen[k] = true
      out[#out + 1] = base .. sep .. k
    end
  end
  table.sort(out)
  return out
end
