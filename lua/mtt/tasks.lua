-- mtt.tasks: task collections for instruction tuning and evaluation.
--
--   local tasks = mtt.tasks.load('tasks/')                 -- NIv2 JSON, Lua specs, archives, lists
--   local t = tasks[1]; print(t)                            -- Task(name, categories, #instances, metric)
--   local prompt, target = mtt.tasks.prompt(t, t.test[1], {format = 'tk', k = 2})
--   local e = mtt.tasks.encode(tok, t, t.test[1], {format = 'exemplars', k = 2, max_len = 256})
--
-- One job per file under tasks/: sources.lua (what load accepts), niv2.lua (JSON files and
-- their checks), spec.lua (Lua specs, mtt.tasks.define), task.lua (the Task object, splits),
-- prompt.lua (encodings, tokens, truncation), rng.lua and utf8.lua (helpers).
local options = require 'mtt.options'
local U = require 'mtt.util'
local sources = require 'mtt.tasks.sources'
local niv2 = require 'mtt.tasks.niv2'
local spec = require 'mtt.tasks.spec'
local task_mod = require 'mtt.tasks.task'
local prompt = require 'mtt.tasks.prompt'

local M = {}

M.DEFAULT_MAX_BYTES = 64 * 2 ^ 20

-- mtt.tasks.load(spec[, {max_bytes =, names =, categories =, tasks_dir =}]) -> array of Task, in
-- file order. All files are read and checked before anything is returned: one bad file, or two
-- tasks of the same name, fails the whole load. names: keep these tasks (each must exist);
-- categories: keep tasks with at least one of these categories.
function M.load(what, opts)
  local fname = 'mtt.tasks.load'
  local o = options.check(fname, opts, 'max_bytes:number names:table categories:table tasks_dir:string')
  local max_bytes = o.max_bytes or M.DEFAULT_MAX_BYTES
  if not U.is_int(max_bytes) or max_bytes < 1 then U.raise(fname .. ': max_bytes must be an integer >= 1') end
  if what == nil then U.raise(fname .. ': expected a path, glob, archive, split list, or an array of them') end
  local entries = sources.collect(what, { max_bytes = max_bytes, tasks_dir = o.tasks_dir })
  local tasks, where = {}, {}
  for _, e in ipairs(entries) do
    local t
    if e.task then t = e.task
    elseif e.lua then t = spec.load_file(e.path, e.name)
    else t = niv2.parse(e.bytes, e.path, e.name) end
    if where[t.name] then
      U.raise(string.format("%s: duplicate task name '%s': %s and %s", fname, t.name, where[t.name], e.path))
    end
    where[t.name] = e.path
    tasks[#tasks + 1] = t
  end
  if o.names then
    local want = {}
    for i, n in ipairs(o.names) do
      if type(n) ~= 'string' then U.raise(string.format('%s: names[%d] must be a string', fname, i)) end
      if not where[n] then U.raise(string.format("%s: names: no task named '%s' among the %d loaded", fname, n, #tasks)) end
      want[n] = true
    end
    local kept = {}
    for _, t in ipairs(tasks) do if want[t.name] then kept[#kept + 1] = t end end
    tasks = kept
  end
  if o.categories then
    local want = {}
    for i, c in ipairs(o.categories) do
      if type(c) ~= 'string' then U.raise(string.format('%s: categories[%d] must be a string', fname, i)) end
      want[c] = true
    end
    local kept = {}
    for _, t in ipairs(tasks) do
      local hit = false
      for _, c in ipairs(t.categories) do hit = hit or want[c] end
      if hit then kept[#kept + 1] = t end
    end
    tasks = kept
  end
  return tasks
end

M.define = function(t) return spec.define(t) end
M.is_task = task_mod.is_task
M.Task = task_mod.Task
M.infer_options = task_mod.infer_options
M.prompt = prompt.prompt
M.encode = prompt.encode
M.encode_many = prompt.encode_many
M.rng = require('mtt.tasks.rng').new -- the stream generators receive: rng(seed):random(m, n), :choice, :shuffle, :sample

return M
