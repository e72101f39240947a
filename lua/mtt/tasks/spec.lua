-- mtt.tasks.spec: tasks written in Lua. mtt.tasks.define{...} builds a Task from a table, and a
-- .lua task file is a chunk that returns such a table (its name defaults to the file's).
--
--   return {
--     name = 'add_two_digits', categories = {'Arithmetic'},
--     definition = 'Add the two numbers.',
--     n = 200, seed = 1, unique = true,
--     generate = function(rng, i)
--       local a, b = rng:random(10, 99), rng:random(10, 99)
--       return a .. ' + ' .. b, tostring(a + b)
--     end,
--   }
--
-- generate(rng, i) returns input, output (a string or a list of accepted strings); instance i
-- is drawn from its own stream, mulberry32 seeded by FNV-1a(seed .. ':' .. i) (so the first m
-- instances do not depend on n). With unique = true an input already seen is skipped and the
-- next i tried (an error after 10 n + 100 tries). Instances get ids '<name>-<i>'.
local options = require 'mtt.options'
local U = require 'mtt.util'
local rng_mod = require 'mtt.tasks.rng'
local utf8 = require 'mtt.tasks.utf8'
local task_mod = require 'mtt.tasks.task'

local M = {}

local SPEC = 'name:string definition:string categories:table source:table positive_examples:table ' ..
  'negative_examples:table instances:table generate:function n:number seed:number unique:boolean ' ..
  'options:table metric:string path:string'

local function text(fname, where, v)
  if type(v) ~= 'string' then U.raise(string.format('%s: %s must be a string, got %s', fname, where, type(v))) end
  local at = utf8.invalid_at(v)
  if at then U.raise(string.format('%s: %s: invalid UTF-8 at byte %d', fname, where, at)) end
  return v
end

local function strings(fname, where, v, nonempty)
  if v == nil then return {} end
  if type(v) ~= 'table' then U.raise(string.format('%s: %s must be a list of strings, got %s', fname, where, type(v))) end
  if nonempty and #v == 0 then U.raise(string.format('%s: %s must not be empty', fname, where)) end
  local out = {}
  for i = 1, #v do out[i] = text(fname, where .. '[' .. i .. ']', v[i]) end
  return out
end

local function examples(fname, where, v)
  if v == nil then return {} end
  if type(v) ~= 'table' then U.raise(string.format('%s: %s must be a list of {input =, output =}', fname, where)) end
  local out = {}
  for i, e in ipairs(v) do
    local w = where .. '[' .. i .. ']'
    if type(e) ~= 'table' then U.raise(string.format('%s: %s must be a table {input =, output =}', fname, w)) end
    out[i] = { input = text(fname, w .. '.input', e.input), output = text(fname, w .. '.output', e.output),
      explanation = e.explanation ~= nil and text(fname, w .. '.explanation', e.explanation) or nil }
  end
  return out
end

local function outputs_of(fname, w, out)
  if type(out) == 'string' then return { text(fname, w, out) } end
  if type(out) ~= 'table' then
    U.raise(string.format('%s: %s must be a string or a list of strings, got %s', fname, w, type(out)))
  end
  return strings(fname, w, out, true)
end

local function generated(fname, o)
  if not U.is_int(o.n) or o.n < 1 then U.raise(fname .. ': generate needs n (an integer >= 1)') end
  if not U.is_int(o.seed) then U.raise(fname .. ': generate needs seed (an integer)') end
  local out, seen, i = {}, {}, 0
  local limit = 10 * o.n + 100
  while #out < o.n do
    i = i + 1
    if i > limit then
      U.raise(string.format('%s: generate made only %d unique inputs in %d tries (n = %d)', fname, #out, limit, o.n))
    end
    local rng = rng_mod.new(rng_mod.hash(tostring(o.seed) .. ':' .. i))
    local ok, input, output = pcall(o.generate, rng, i)
    if not ok then U.raise(string.format('%s: generate(rng, %d) failed: %s', fname, i, tostring(input))) end
    local w = 'generate(rng, ' .. i .. ')'
    input = text(fname, w .. ' input', input)
    if not (o.unique and seen[input]) then
      seen[input] = true
      out[#out + 1] = { id = o.name .. '-' .. i, input = input, outputs = outputs_of(fname, w .. ' output', output) }
    end
  end
  return out
end

local function listed(fname, name, v)
  if #v == 0 then U.raise(fname .. ': instances is empty (a task needs at least one instance)') end
  local out, ids = {}, {}
  for i, e in ipairs(v) do
    local w = 'instances[' .. i .. ']'
    if type(e) ~= 'table' then U.raise(string.format('%s: %s must be a table {input =, output(s) =}', fname, w)) end
    if (e.output == nil) == (e.outputs == nil) then
      U.raise(string.format('%s: %s needs exactly one of output (a string) or outputs (a list)', fname, w))
    end
    local id = e.id == nil and (name .. '-' .. i) or text(fname, w .. '.id', e.id)
    if ids[id] then U.raise(string.format("%s: %s.id: duplicate id '%s' (also instances[%d])", fname, w, id, ids[id])) end
    ids[id] = i
    out[i] = { id = id, input = text(fname, w .. '.input', e.input),
      outputs = outputs_of(fname, w .. (e.output ~= nil and '.output' or '.outputs'), e.output or e.outputs) }
  end
  return out
end

-- mtt.tasks.define{name =, definition =, categories =, source =, positive_examples =,
-- negative_examples =, instances = {{input =, output = s | outputs = {...}, id =}, ...} |
-- generate = fn + n + seed (+ unique), options =, metric =} -> Task
function M.define(spec, fname)
  fname = fname or 'mtt.tasks.define'
  local o = options.check(fname, spec, SPEC)
  if spec == nil then U.raise(fname .. ': expected a table') end
  local name = text(fname, 'name', o.name)
  if name == '' then U.raise(fname .. ': name must not be empty') end
  if (o.instances == nil) == (o.generate == nil) then
    U.raise(fname .. ': give exactly one of instances = {...} or generate = function(rng, i) (with n and seed)')
  end
  if o.instances == nil and (o.n == nil or o.seed == nil) then U.raise(fname .. ': generate needs n and seed') end
  if o.instances ~= nil and (o.n ~= nil or o.seed ~= nil or o.unique ~= nil) then
    U.raise(fname .. ': n, seed and unique go with generate, not instances')
  end
  local f = {
    name = name, path = o.path, definition = o.definition and text(fname, 'definition', o.definition) or '',
    categories = strings(fname, 'categories', o.categories), source = strings(fname, 'source', o.source),
    positive_examples = examples(fname, 'positive_examples', o.positive_examples),
    negative_examples = examples(fname, 'negative_examples', o.negative_examples),
    instances = o.instances and listed(fname, name, o.instances) or generated(fname, o),
  }
  if o.options ~= nil then
    f.options = strings(fname, 'options', o.options, true)
    local seen = {}
    for i, s in ipairs(f.options) do
      if seen[s] then U.raise(string.format("%s: options[%d]: duplicate option '%s'", fname, i, s)) end
      seen[s] = true
    end
    for i, inst in ipairs(f.instances) do
      local hit = false
      for _, s in ipairs(inst.outputs) do hit = hit or seen[s] end
      if not hit then
        U.raise(string.format("%s: instance %d: none of its outputs is among the options ('%s')", fname, i, inst.outputs[1]))
      end
    end
  end
  if o.metric ~= nil then
    if not task_mod.metrics[o.metric] then
      U.raise(string.format("%s: unknown metric '%s' (accepted: rouge_l, exact_match, acc)", fname, o.metric))
    end
    f.metric = o.metric
  end
  local t = task_mod.new(f)
  if t.metric == 'acc' and not t.options then
    U.raise(fname .. ": metric 'acc' needs options (none given and none could be inferred)")
  end
  return t
end

-- A .lua task file: runs the chunk (an ordinary Lua file: it may require mtt) and defines the
-- table it returns; the name defaults to the file's base name.
function M.load_file(path, name)
  local fname = 'mtt.tasks.load: ' .. path
  local chunk, err = loadfile(path)
  if not chunk then U.raise(fname .. ': ' .. tostring(err)) end
  local ok, spec = pcall(chunk)
  if not ok then U.raise(fname .. ': ' .. tostring(spec)) end
  if type(spec) ~= 'table' then U.raise(fname .. ': the file must return a table for mtt.tasks.define, got ' .. type(spec)) end
  local copy = {}
  for k, v in pairs(spec) do copy[k] = v end
  if copy.name == nil then copy.name = name end
  copy.path = path
  return M.define(copy, fname)
end

return M
