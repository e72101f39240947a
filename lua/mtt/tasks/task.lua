-- mtt.tasks.task: the Task object every loader returns, its default train/test split and its
-- one-line summary. A Task is a plain table (fields documented in lua/mtt/README.md, "Tasks")
-- with a metatable for printing and task:split{...}.
--
-- Default split (deterministic per task, independent of load order and of other tasks): the
-- instance indices 1..n are shuffled with mulberry32 seeded by FNV-1a("0:" .. name); the first
-- min(100, floor(0.25 n)) of them (at least 1 when n >= 2) are the test split, the rest train.
-- Both splits list their instances in file order.
local options = require 'mtt.options'
local U = require 'mtt.util'
local rng = require 'mtt.tasks.rng'

local M = {}

local Task = { __name = 'mtt.Task' }
Task.__index = Task
M.Task = Task

M.metrics = { rouge_l = true, exact_match = true, acc = true }

function M.is_task(v) return getmetatable(v) == Task end

function Task.__tostring(t)
  return string.format('Task(%s, categories=%s, instances=%d (train %d, test %d), metric=%s%s)', t.name,
    table.concat(t.categories, '; '), #t.instances, #t.train, #t.test, t.metric,
    t.options and string.format(', options=%d', #t.options) or '')
end

-- task:split{test_fraction = 0.25, max_test = 100, seed = 0} -> train, test (new arrays of the
-- task's instance tables, each in file order). The task itself is not changed: assign
-- task.train, task.test = task:split{...} to replace the default split.
function Task:split(opts)
  local o = options.check('task:split', opts, 'test_fraction:number max_test:number seed:number')
  local frac, max_test, seed = o.test_fraction or 0.25, o.max_test or 100, o.seed or 0
  if frac < 0 or frac > 1 then U.raise('task:split: test_fraction must be in [0, 1], got ' .. frac) end
  if not U.is_int(max_test) or max_test < 0 then U.raise('task:split: max_test must be an integer >= 0') end
  if not U.is_int(seed) then U.raise('task:split: seed must be an integer') end
  local n = #self.instances
  local n_test = math.min(max_test, math.floor(n * frac))
  if n_test < 1 and n >= 2 and frac > 0 and max_test > 0 then n_test = 1 end
  local perm = rng.new(rng.hash(tostring(seed) .. ':' .. self.name)):permutation(n)
  local is_test = {}
  for i = 1, n_test do is_test[perm[i]] = true end
  local train, test = {}, {}
  for i, inst in ipairs(self.instances) do
    if is_test[i] then test[#test + 1] = inst else train[#train + 1] = inst end
  end
  return train, test
end

-- The instance with this id, or nil.
function Task:instance(id)
  if not self._by_id then
    local m = {}
    for _, inst in ipairs(self.instances) do m[inst.id] = inst end
    rawset(self, '_by_id', m)
  end
  return self._by_id[id]
end

-- Options inferred for a task without explicit ones: when every instance has exactly one
-- output, the distinct outputs number <= 10 and there are >= 20 instances, they are the
-- classes (sorted by byte order); otherwise nil.
function M.infer_options(instances)
  if #instances < 20 then return nil end
  local seen, list = {}, {}
  for _, inst in ipairs(instances) do
    if #inst.outputs ~= 1 then return nil end
    local o = inst.outputs[1]
    if not seen[o] then
      seen[o] = true
      list[#list + 1] = o
      if #list > 10 then return nil end
    end
  end
  table.sort(list)
  return list
end

-- M.new(fields): fields already checked by the caller (niv2.lua, spec.lua); fills options,
-- metric and the default split.
function M.new(f)
  local t = setmetatable({
    name = f.name, categories = f.categories or {}, source = f.source or {}, definition = f.definition or '',
    positive_examples = f.positive_examples or {}, negative_examples = f.negative_examples or {},
    instances = f.instances, options = f.options, metric = f.metric, path = f.path,
  }, Task)
  if t.options == nil and f.infer_options ~= false then t.options = M.infer_options(t.instances) end
  if t.metric == nil then t.metric = t.options and 'acc' or 'rouge_l' end
  t.train, t.test = t:split()
  return t
end

return M
