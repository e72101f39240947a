-- mtt.show: how the REPL prints results: tensors by tostring, plain tables as constructors
-- ({2, 3}, {lr = 0.001, ...}) cut at a few levels and items, the rest as print would. A value
-- printed on its own (not inside a table) that is one of mtt's objects gets a summary of a few
-- lines: a model its parameter table (model:summary()), a Task its fields and an example, a
-- list of Tasks one line each, a mixture its rates, a run folder (mtt.repl.runs) its state.
local MAX_ITEMS, MAX_DEPTH = 30, 3
local MAX_LINES = 40

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

-- ---- summaries of mtt objects ----
local function cut_lines(text, max)
  local lines = {}
  for l in (text .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = l end
  if #lines <= max then return text end
  local n = #lines
  for i = n, max + 1, -1 do lines[i] = nil end
  lines[#lines + 1] = string.format('... (%d more lines)', n - max)
  return table.concat(lines, '\n')
end

local function one_line(s, n)
  s = tostring(s):gsub('%s+', ' ')
  if #s > n then return s:sub(1, n - 3) .. '...' end
  return s
end

local function is_task(v)
  local mt = getmetatable(v)
  return type(mt) == 'table' and mt.__name == 'mtt.Task'
end

local function task_summary(t)
  local lines = { tostring(t) }
  if t.path then lines[#lines + 1] = '  path:       ' .. tostring(t.path) end
  lines[#lines + 1] = '  definition: ' .. one_line(t.definition or '', 120)
  if t.options then
    local opts = {}
    for i = 1, math.min(#t.options, 10) do opts[i] = string.format('%q', t.options[i]) end
    lines[#lines + 1] = '  options:    ' .. table.concat(opts, ', ') .. (#t.options > 10 and ', ...' or '')
  end
  lines[#lines + 1] = string.format('  examples:   %d positive, %d negative', #(t.positive_examples or {}),
    #(t.negative_examples or {}))
  local inst = (t.test and t.test[1]) or (t.instances and t.instances[1])
  if inst then
    lines[#lines + 1] = string.format('  instance %s: input %s', tostring(inst.id),
      one_line(string.format('%q', inst.input), 90))
    local outs = {}
    for i = 1, math.min(#(inst.outputs or {}), 3) do outs[i] = string.format('%q', inst.outputs[i]) end
    lines[#lines + 1] = '    outputs: ' .. one_line(table.concat(outs, ', '), 100)
  end
  return table.concat(lines, '\n')
end

local function is_module(v)
  local nn = package.loaded['mtt.nn']
  return nn and nn.is_module and nn.is_module(v)
end

local function is_mixture(v)
  if type(v) ~= 'table' then return false end
  local mt = getmetatable(v)
  local ix = type(mt) == 'table' and rawget(mt, '__index')
  return type(ix) == 'table' and type(rawget(ix, 'describe')) == 'function' and type(rawget(ix, 'rates')) == 'function'
    and type(rawget(ix, 'sample')) == 'function'
end

-- A summary for a value printed on its own, or nil (then: show).
local function summary(v)
  if type(v) ~= 'table' then return nil end
  local ok, text = pcall(function()
    if is_module(v) and type(v.summary) == 'function' then return v:summary() end
    if is_task(v) then return task_summary(v) end
    if is_mixture(v) then return tostring(v) .. '\n' .. tostring(v:describe(1)) end
    if getmetatable(v) == nil and #v > 0 and is_task(v[1]) then
      local lines = {}
      for i = 1, #v do lines[i] = string.format('%3d  %s', i, is_task(v[i]) and tostring(v[i]) or show(v[i], 1, {})) end
      return table.concat(lines, '\n')
    end
    return nil
  end)
  if not ok or not text then return nil end
  return cut_lines(text, MAX_LINES)
end

-- show(...) -> the values as one line, tab-separated, as print would lay them out (one value
-- that is an mtt object: its summary, over several lines).
return function(...)
  local n = select('#', ...)
  if n == 1 then
    local s = summary((...))
    if s then return s end
  end
  local out = {}
  for i = 1, n do out[i] = show((select(i, ...))) end
  return table.concat(out, '\t')
end
