-- mtt.repl.tasks: tasks at the prompt: :task loads one (mtt.tasks.load) into the global `task`
-- and shows its summary and its prompts in each encoding; :eval runs mtt.eval.icl on it with
-- the loaded model.
--
--   M.find(name_or_path) -> task, or a list of tasks when a folder/list/glob holds several
--   M.task_dirs() -> the folders searched for a bare task name: ./tasks, build/data/tasks
--     (and the same under MTT_ROOT), the folder of the last task loaded
jit.off(true, true)
local U = require 'mtt.util'
local io_ = require 'mtt.io'
local repl = require 'mtt.repl'
local common = require 'mtt.repl.common'
local now = require('mtt.train.progress').now -- wall-clock seconds
local show = require 'mtt.show'

local raise = U.raise
local M = {}

local function tasks_lib() return require 'mtt.tasks' end

function M.task_dirs()
  local root = require('mtt.ffi').root
  local out, seen = {}, {}
  local cands = { 'tasks', 'build/data/tasks' }
  if root then cands[#cands + 1] = root .. '/tasks'; cands[#cands + 1] = root .. '/build/data/tasks' end
  if M.last_dir then table.insert(cands, 1, M.last_dir) end
  for _, d in ipairs(cands) do
    if not seen[d] and common.is_dir(d) then seen[d] = true; out[#out + 1] = d end
  end
  return out
end

local function task_file(name) return name:match('^(.+)%.json$') or name:match('^(.+)%.lua$') end

function M.find(arg)
  if type(arg) ~= 'string' or arg == '' then raise('mtt.repl: give a task name or path') end
  local T = tasks_lib()
  if common.exists(arg) or arg:find('[*?]') then
    local list = T.load(arg)
    if not common.is_dir(arg) then M.last_dir = common.dirname(arg) end
    if #list == 1 then return list[1] end
    if #list == 0 then raise('mtt.repl: no task in ' .. arg) end
    return list
  end
  local dirs = M.task_dirs()
  local matches = {}
  for _, d in ipairs(dirs) do
    for _, ext in ipairs({ '.json', '.lua' }) do
      if common.exists(d .. '/' .. arg .. ext) then
        M.last_dir = d
        return T.load(d .. '/' .. arg .. ext)[1]
      end
    end
    local ok, names = pcall(io_.listdir, d)
    if ok then
      for _, n in ipairs(names) do
        local base = task_file(n)
        if base and base:find(arg, 1, true) then matches[#matches + 1] = { d, n, base } end
      end
    end
  end
  if #matches == 1 then
    M.last_dir = matches[1][1]
    return T.load(matches[1][1] .. '/' .. matches[1][2])[1]
  end
  if #matches > 1 then
    local names = {}
    for i = 1, math.min(#matches, 12) do names[i] = matches[i][3] end
    raise(string.format("mtt.repl: '%s' matches %d tasks: %s%s", arg, #matches, table.concat(names, ', '),
      #matches > 12 and ', ...' or ''))
  end
  raise(string.format("mtt.repl: no task '%s' (looked for a path, and for NAME.json / NAME.lua in: %s)", arg,
    #dirs > 0 and table.concat(dirs, ', ') or 'no task folder found (build them: ./build.sh)'))
end

-- Prompt text shown at most max lines (the first few and the last ones), lines cut at 100 chars.
local function show_prompt(text, max)
  local lines = {}
  for l in (text .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = l end
  local out = {}
  local function add(l) out[#out + 1] = '  | ' .. (#l > 100 and l:sub(1, 97) .. '...' or l) end
  if #lines <= max + 2 then -- cutting one or two lines saves nothing
    for _, l in ipairs(lines) do add(l) end
  else
    local head = math.floor(max / 3)
    for i = 1, head do add(lines[i]) end
    out[#out + 1] = string.format('  | ... (%d lines)', #lines - max)
    for i = #lines - (max - head) + 1, #lines do add(lines[i]) end
  end
  return table.concat(out, '\n')
end

-- ---- :task ----
local FORMATS = { 'tk', 'id', 'exemplars' }

local function cmd_task(_, words)
  if not words[1] then raise('mtt.repl: :task NAME_OR_PATH [k]: give a task name or a path') end
  local k = words[2] and (tonumber(words[2]) or raise('mtt.repl: :task: k must be a number, got ' .. words[2])) or 2
  local found = M.find(words[1])
  if not tasks_lib().is_task(found) then
    rawset(_G, 'tasks', found)
    print(show(found))
    print(string.format('%d tasks are in the global `tasks`; :task NAME shows one', #found))
    return
  end
  local task = found
  rawset(_G, 'task', task)
  print(show(task))
  local inst = task.test[1] or task.instances[1]
  if not inst then print('(no instances)'); return end
  local model, tok = rawget(_G, 'model'), rawget(_G, 'tok')
  local has_tok = type(tok) == 'table' and type(tok.encode) == 'function'
  local max_len = has_tok and type(model) == 'table' and type(model.max_positions) == 'function'
    and model:max_positions() or nil
  print(string.format('\nprompts for instance %s (the first of the test split), k = %d:', tostring(inst.id), k))
  for _, fmt in ipairs(FORMATS) do
    local prompt, target, nd = tasks_lib().prompt(task, inst, { format = fmt, k = k, seed = 0 })
    local head = string.format("-- format '%s': %d demonstration%s", fmt, nd, nd == 1 and '' or 's')
    if has_tok then
      local e = tasks_lib().encode(tok, task, inst, { format = fmt, k = k, seed = 0, max_len = max_len })
      head = head .. string.format('; %d tokens: prompt %d, target %d (with <eot>), loss from token %d%s', #e.ids,
        e.n_prompt, e.n_target, e.target_start,
        e.truncated and string.format('; cut to %d positions (%d demonstrations kept)', max_len, e.n_demos) or '')
    end
    print(head)
    print(show_prompt(prompt, 12))
    print('  target: ' .. string.format('%q', target):gsub('\\\n', '\\n'))
  end
  if not has_tok then print('(:load a model to see the token counts)') end
  print('the task is in the global `task`; :eval ' .. task.name .. ' [k] scores the loaded model on it')
end

-- ---- :eval ----
local function cmd_eval(_, words)
  local o = { max_instances = 20, seed = 0 }
  local flags = { n = 'max_instances', s = 'seed', m = 'max_new_tokens' }
  local rest = {}
  local i = 1
  while words[i] do
    local f = words[i]:match('^%-(%a)$')
    if f and flags[f] then
      o[flags[f]] = tonumber(words[i + 1] or '') or raise('mtt.repl: :eval: -' .. f .. ' needs a number')
      i = i + 2
    else
      rest[#rest + 1] = words[i]
      i = i + 1
    end
  end
  local model, tok = rawget(_G, 'model'), rawget(_G, 'tok')
  if type(model) ~= 'table' or type(tok) ~= 'table' then raise('mtt.repl: :eval: no model loaded (:load RUN first)') end
  local task
  local ks = {}
  if rest[1] and not tonumber(rest[1]) then
    task = M.find(rest[1])
    table.remove(rest, 1)
  else
    task = rawget(_G, 'task')
  end
  if not tasks_lib().is_task(task) then raise('mtt.repl: :eval TASK [k...]: give a task (or :task NAME first)') end
  for _, w in ipairs(rest) do ks[#ks + 1] = tonumber(w) or raise('mtt.repl: :eval: k must be a number, got ' .. w) end
  if #ks == 0 then ks = { 0 } end
  rawset(_G, 'task', task)
  local t0 = now()
  local rows = require('mtt.eval').icl { model = model, tokenizer = tok, tasks = { task }, k = ks, seed = o.seed,
    max_instances = o.max_instances, max_new_tokens = o.max_new_tokens, progress = false }
  local out = {}
  for _, r in ipairs(rows) do
    if r.task ~= '*' then out[#out + 1] = { r.task, r.k, r.seed, r.metric, r.value, r.n } end
  end
  print(common.table({ 'task', 'k', 'seed', 'metric', 'value', 'n' }, out))
  print(string.format('[%d test instances at most (-n), seed %d; %.1f s]', o.max_instances, o.seed, now() - t0))
  M.last_rows = rows
end

local function complete_task(i, arg)
  if i ~= 1 then return {} end
  local out = {}
  for _, d in ipairs(M.task_dirs()) do
    local ok, names = pcall(io_.listdir, d)
    if ok then
      for _, n in ipairs(names) do
        local base = task_file(n)
        if base and base:sub(1, #arg) == arg then out[#out + 1] = base end
      end
    end
  end
  local function wanted(n, d) return d or task_file(n) or n:match('%.txt$') end
  for _, p in ipairs(common.complete_path(arg, { filter = wanted })) do
    out[#out + 1] = p
  end
  return out
end

repl.register { name = 'task', usage = 'NAME_OR_PATH [k]',
  help = 'load a task into `task`: summary and its prompts in each format',
  details = 'NAME is looked up as NAME.json / NAME.lua (or a unique part of a name) in ./tasks, build/data/tasks\n'
    .. 'and under MTT_ROOT; a path may be anything mtt.tasks.load reads (a folder sets the global `tasks`).\n'
    .. 'With a model loaded, the token counts of mtt.tasks.encode are shown too. k: demonstrations (default 2).',
  run = cmd_task, complete = complete_task }
repl.register { name = 'eval', usage = '[-n N] [-s SEED] [-m M] [TASK] [k...]',
  help = 'ICL evaluation of the loaded model on a task (mtt.eval.icl)',
  details = 'TASK defaults to the global `task`; k defaults to 0; -n: test instances (default 20); -m: max new\n'
    .. 'tokens of the generation metrics. Prints one row per k and metric. Ctrl-C stops it.',
  run = cmd_eval, complete = complete_task }

return M
