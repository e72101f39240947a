-- mtt.train.metrics: the run folder's JSON files. metrics.jsonl holds one JSON object per
-- logged step, its keys in a fixed order (step, loss, lr, tokens_per_s, val_loss, elapsed);
-- numbers are written with 17 significant digits so that a float read back is the same
-- float (the resume test compares losses bitwise). config.json is the resolved configuration.
local M = {}

local KEY_ORDER = { 'step', 'loss', 'lr', 'tokens_per_s', 'val_loss', 'elapsed' }
local ORDER_RANK = {}
for i, k in ipairs(KEY_ORDER) do ORDER_RANK[k] = i end

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
  ['\r'] = '\\r', ['\t'] = '\\t' }
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function number(v)
  if v ~= v or v == math.huge or v == -math.huge then return 'null' end -- JSON has no NaN/inf
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format('%d', v) end
  return string.format('%.17g', v)
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil and 'empty' or false end
  for k in pairs(t) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then return false end
  end
  return true
end

-- JSON text of a plain Lua value. Object keys are sorted (metric keys in their fixed order
-- first), so that the same table always gives the same text. Values JSON cannot hold
-- (functions, cdata, userdata) become their tostring() as a string.
function M.encode(v, indent, depth)
  depth = depth or 0
  local t = type(v)
  if t == 'nil' then return 'null' end
  if t == 'boolean' then return tostring(v) end
  if t == 'number' then return number(v) end
  if t == 'string' then return quote(v) end
  if t ~= 'table' then return quote(tostring(v)) end
  if depth > 32 then error('metrics.encode: nesting deeper than 32 (a cycle?)', 2) end
  local nl = indent and ('\n' .. string.rep(indent, depth + 1)) or ''
  local close = indent and ('\n' .. string.rep(indent, depth)) or ''
  local sep = indent and ': ' or ':'
  local kind = is_array(v)
  if kind == 'empty' then return '[]' end
  local parts = {}
  if kind then
    for i = 1, #v do parts[i] = nl .. M.encode(v[i], indent, depth + 1) end
    return '[' .. table.concat(parts, ',') .. close .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys, function(a, b)
    local ra, rb = ORDER_RANK[a] or 1e9, ORDER_RANK[b] or 1e9
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[i] = nl .. quote(k) .. sep .. M.encode(val, indent, depth + 1)
  end
  return '{' .. table.concat(parts, ',') .. close .. '}'
end

-- Writes path atomically: a temporary file, then a rename over the old one.
function M.write_file(path, text)
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'wb')
  if not f then return nil, err end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then return nil, rerr end
  return true
end

-- An appending metrics.jsonl writer: one line per record, flushed at once (a killed run
-- loses at most the line being written, which the reader then drops).
function M.writer(path)
  local f, err = io.open(path, 'ab')
  if not f then return nil, err end
  local w = {}
  function w.log(record)
    f:write(M.encode(record), '\n')
    f:flush()
  end
  function w.close() f:close() end
  return w
end

-- The records of a metrics.jsonl (a list of tables), dropping a torn last line.
function M.read(path)
  local f = io.open(path, 'rb')
  if not f then return {} end
  local text = f:read('*a')
  f:close()
  local cjson = require 'cjson'
  local records = {}
  for line in text:gmatch('([^\n]*)\n') do -- a line without its newline was torn: dropped
    local ok, rec = pcall(cjson.decode, line)
    if ok and type(rec) == 'table' then
      for k, v in pairs(rec) do if v == cjson.null then rec[k] = nil end end
      records[#records + 1] = rec
    end
  end
  return records
end

-- Rewrites metrics.jsonl keeping the lines of steps <= step (used on resume: the lines
-- logged after the checkpoint are logged again by the resumed run). Lines are kept as text.
function M.truncate(path, step)
  local f = io.open(path, 'rb')
  if not f then return true end
  local text = f:read('*a')
  f:close()
  local kept = {}
  for line in text:gmatch('([^\n]*)\n') do
    local s = tonumber(line:match('^{"step":(%d+)[,}]'))
    if s and s <= step then kept[#kept + 1] = line .. '\n' end
  end
  return M.write_file(path, table.concat(kept))
end

return M
