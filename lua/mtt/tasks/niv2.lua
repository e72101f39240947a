-- mtt.tasks.niv2: one Super-NaturalInstructions task file (JSON bytes) -> checked task fields.
--
-- Read as published: "Definition" (a list of strings, joined with "\n"; a plain string is
-- accepted too), "Categories" and "Source" (lists of strings), "Positive Examples" and
-- "Negative Examples" ({input, output, explanation}), "Instances" ({id, input, output = [...]}).
-- Other keys (Contributors, URL, Reasoning, Domains, languages, Instance License, ...) are
-- ignored, but every string in the file must be valid UTF-8. A bare NaN (some upstream URL
-- fields) parses, as in Python's json. mtt's own optional keys: "Answer Options" (a list of
-- distinct strings; each instance must have one of them among its outputs) and "Metric"
-- ('rouge_l', 'exact_match' or 'acc').
--
-- Every problem is a Lua error "mtt.tasks.load: <file>: <field>: <what>", the field written as
-- a path (Instances[3].output[1]); nothing is returned for a bad file.
local cjson = require('cjson').new()
local U = require 'mtt.util'
local utf8 = require 'mtt.tasks.utf8'
local task_mod = require 'mtt.tasks.task'

cjson.decode_invalid_numbers(true) -- NaN / Infinity, as Python's json writes them
cjson.decode_max_depth(64)

local M = {}

local function fail(file, field, msg)
  U.raise(string.format('mtt.tasks.load: %s: %s: %s', file, field, msg))
end

local function kind(v)
  if v == cjson.null then return 'null' end
  local t = type(v)
  if t == 'table' then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == #v and 'array' or 'object'
  end
  return t
end

local function is_array(v) return type(v) == 'table' and kind(v) == 'array' end
local function is_object(v) return type(v) == 'table' and (next(v) == nil or kind(v) == 'object') end

-- Every string (keys too) must be valid UTF-8; the path of the first bad one is reported.
local function check_utf8(file, v, path)
  if type(v) == 'string' then
    local at = utf8.invalid_at(v)
    if at then fail(file, path, string.format('invalid UTF-8 at byte %d of the string', at)) end
  elseif type(v) == 'table' then
    if is_array(v) then
      for i = 1, #v do check_utf8(file, v[i], path .. '[' .. i .. ']') end
    else
      for k, x in pairs(v) do
        local at = type(k) == 'string' and utf8.invalid_at(k)
        if at then fail(file, path .. ' (a key)', string.format('invalid UTF-8 at byte %d of the key', at)) end
        check_utf8(file, x, path == '' and tostring(k) or (path .. '.' .. tostring(k)))
      end
    end
  end
end

-- JSON errors from lua-cjson name a character offset; say line and column too.
local function json_error(file, bytes, err)
  err = tostring(err):gsub('^.-:%d+: ', '')
  local pos = tonumber(err:match('at character (%d+)'))
  local where = ''
  if pos then
    local line, col = 1, pos
    for nl in bytes:sub(1, pos - 1):gmatch('()\n') do line, col = line + 1, pos - nl end
    where = string.format(' (line %d, column %d)', line, col)
  end
  fail(file, 'JSON', 'cannot parse: ' .. err .. where)
end

local function get_string(file, obj, key, field)
  local v = obj[key]
  if v == nil then fail(file, field, 'missing field') end
  if type(v) ~= 'string' then fail(file, field, 'expected a string, got ' .. kind(v)) end
  return v
end

local function get_string_list(file, obj, key, field, required, nonempty)
  local v = obj[key]
  if v == nil then
    if required then fail(file, field, 'missing field') end
    return {}
  end
  if not is_array(v) then fail(file, field, 'expected an array of strings, got ' .. kind(v)) end
  if nonempty and #v == 0 then fail(file, field, 'must not be empty') end
  local out = {}
  for i = 1, #v do
    if type(v[i]) ~= 'string' then fail(file, field .. '[' .. i .. ']', 'expected a string, got ' .. kind(v[i])) end
    out[i] = v[i]
  end
  return out
end

local function examples(file, obj, key, required)
  local v = obj[key]
  if v == nil then
    if required then fail(file, key, 'missing field') end
    return {}
  end
  if not is_array(v) then fail(file, key, 'expected an array of objects, got ' .. kind(v)) end
  local out = {}
  for i, e in ipairs(v) do
    local f = key .. '[' .. i .. ']'
    if not is_object(e) then fail(file, f, 'expected an object, got ' .. kind(e)) end
    local ex = { input = get_string(file, e, 'input', f .. '.input'), output = get_string(file, e, 'output', f .. '.output') }
    if e.explanation ~= nil then ex.explanation = get_string(file, e, 'explanation', f .. '.explanation') end
    out[i] = ex
  end
  return out
end

local function instances(file, obj)
  local v = obj.Instances
  if v == nil then fail(file, 'Instances', 'missing field') end
  if not is_array(v) then fail(file, 'Instances', 'expected an array of objects, got ' .. kind(v)) end
  if #v == 0 then fail(file, 'Instances', 'empty (a task needs at least one instance)') end
  local out, ids = {}, {}
  for i, e in ipairs(v) do
    local f = 'Instances[' .. i .. ']'
    if not is_object(e) then fail(file, f, 'expected an object, got ' .. kind(e)) end
    local id = get_string(file, e, 'id', f .. '.id')
    if ids[id] then fail(file, f .. '.id', string.format("duplicate id '%s' (also Instances[%d])", id, ids[id])) end
    ids[id] = i
    out[i] = { id = id, input = get_string(file, e, 'input', f .. '.input'),
      outputs = get_string_list(file, e, 'output', f .. '.output', true, true) }
  end
  return out
end

-- M.parse(bytes, file, name) -> task (file: the name used in messages and task.path).
function M.parse(bytes, file, name)
  local ok, obj = pcall(cjson.decode, bytes)
  if not ok then json_error(file, bytes, obj) end
  if type(obj) ~= 'table' or (next(obj) ~= nil and kind(obj) ~= 'object') then
    fail(file, 'JSON', 'the top level must be an object, got ' .. kind(obj))
  end
  if bytes:find('[\128-\255]') then check_utf8(file, obj, '') end

  local def = obj.Definition
  if def == nil then fail(file, 'Definition', 'missing field') end
  if type(def) ~= 'string' then
    def = table.concat(get_string_list(file, obj, 'Definition', 'Definition', true, true), '\n')
  end
  local f = {
    name = name, path = file, definition = def,
    categories = get_string_list(file, obj, 'Categories', 'Categories', true),
    source = get_string_list(file, obj, 'Source', 'Source', false),
    positive_examples = examples(file, obj, 'Positive Examples', true),
    negative_examples = examples(file, obj, 'Negative Examples', false),
    instances = instances(file, obj),
  }
  if obj['Answer Options'] ~= nil then
    f.options = get_string_list(file, obj, 'Answer Options', 'Answer Options', true, true)
    local seen = {}
    for i, o in ipairs(f.options) do
      if seen[o] then fail(file, 'Answer Options[' .. i .. ']', string.format("duplicate option '%s'", o)) end
      seen[o] = true
    end
    for i, inst in ipairs(f.instances) do
      local hit = false
      for _, o in ipairs(inst.outputs) do hit = hit or seen[o] end
      if not hit then
        fail(file, 'Instances[' .. i .. '].output', string.format("none of the outputs is among the Answer Options ('%s')",
          inst.outputs[1]))
      end
    end
  end
  if obj.Metric ~= nil then
    f.metric = get_string(file, obj, 'Metric', 'Metric')
    if not task_mod.metrics[f.metric] then
      fail(file, 'Metric', string.format("unknown metric '%s' (accepted: rouge_l, exact_match, acc)", f.metric))
    end
  end
  local t = task_mod.new(f)
  if t.metric == 'acc' and not t.options then
    fail(file, 'Metric', "'acc' needs Answer Options (none given and none could be inferred)")
  end
  return t
end

return M
