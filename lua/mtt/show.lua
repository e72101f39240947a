-- mtt.show: how the REPL prints results: tensors by tostring, plain tables as constructors
-- ({2, 3}, {lr = 0.001, ...}) cut at a few levels and items, the rest as print would.
local MAX_ITEMS, MAX_DEPTH = 30, 3

local function is_ident(k) return type(k) == 'string' and k:match('^[%a_][%w_]*$') end

local show

local function show_table(t, depth, seen)
  if seen[t] then return '<cycle>' end
  local mt = getmetatable(t)
  if mt and mt.__tostring then return tostring(t) end
  if depth > MAX_DEPTH then return '{...}' end
  seen[t] = true
  local parts, n = {}, #t
  for i = 1, math.min(n, MAX_ITEMS) do parts[#parts + 1] = show(t[i], depth + 1, seen) end
  local keys = {}
  for k in pairs(t) do
    if not (type(k) == 'number' and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
    return type(a) < type(b)
  end)
  for _, k in ipairs(keys) do
    if #parts >= MAX_ITEMS then break end
    local key = is_ident(k) and k or '[' .. show(k, depth + 1, seen) .. ']'
    parts[#parts + 1] = key .. ' = ' .. show(t[k], depth + 1, seen)
  end
  seen[t] = nil
  local more = (n + #keys > MAX_ITEMS) and ', ...' or ''
  return '{' .. table.concat(parts, ', ') .. more .. '}'
end

show = function(v, depth, seen)
  if type(v) == 'table' then return show_table(v, depth or 1, seen or {}) end
  if type(v) == 'string' and depth then return string.format('%q', v) end -- inside a table
  if type(v) == 'number' and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format('%d', v)
  end
  return tostring(v)
end

-- show(...) -> the values as one line, tab-separated, as print would lay them out.
return function(...)
  local out = {}
  for i = 1, select('#', ...) do out[i] = show((select(i, ...))) end
  return table.concat(out, '\t')
end
