-- mtt.repl: the REPL's `:` commands (tools/mtt/repl.c hands every line that starts with ':' and
-- a letter to M.command). One file per family registers its commands here:
--   runs.lua   :runs :metrics :plot   (run folders, metrics.jsonl, terminal charts via chart.lua)
--   model.lua  :load :gen :score      (a model + tokenizer as the globals `model` and `tok`)
--   tasks.lua  :task :eval            (mtt.tasks and mtt.eval.icl)
-- A command prints what it shows and returns nothing, so the prompt prints nothing more; its
-- failures are Lua errors (the REPL prints them and goes on). The command files run with the
-- JIT off: their loops (token by token in :gen) then pass through the interpreter, where the
-- Ctrl-C hook of repl.c is checked, so an interrupt lands between two tokens.
local U = require 'mtt.util'

local M = {}
local registry, order = {}, {}

-- register{name =, usage =, help =, details =, run = fn(rest, words), complete = fn(i, arg)}
--   usage: the argument part shown by :help; help: one line; details: more lines for :help NAME;
--   run gets the text after the name (rest, spaces trimmed) and its words; complete(i, arg)
--   returns candidates for the i-th argument being typed (arg: what is typed so far).
function M.register(cmd)
  assert(type(cmd.name) == 'string' and type(cmd.run) == 'function', 'mtt.repl.register: name and run needed')
  if not registry[cmd.name] then order[#order + 1] = cmd.name end
  registry[cmd.name] = cmd
end

local loaded = false
local function load_families()
  if loaded then return end
  loaded = true
  for _, family in ipairs({ 'mtt.repl.runs', 'mtt.repl.model', 'mtt.repl.tasks' }) do require(family) end
end

-- Words of an argument string: split at spaces, "double quoted" or 'single quoted' words
-- keep theirs.
function M.words(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match('%s') then
      i = i + 1
    elseif c == '"' or c == "'" then
      local j = s:find(c, i + 1, true)
      if not j then U.raise('mtt.repl: unclosed quote ' .. c .. ' in: ' .. s) end
      out[#out + 1] = s:sub(i + 1, j - 1)
      i = j + 1
    else
      local j = s:find('%s', i) or n + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    end
  end
  return out
end

function M.names()
  load_families()
  local names = {}
  for i, n in ipairs(order) do names[i] = n end
  table.sort(names)
  return names
end

function M.get(name)
  load_families()
  return registry[name]
end

-- M.run(path_or_name) -> the Run object of a run folder (lua/mtt/repl/runs.lua); it prints a summary.
function M.run(path) return require('mtt.repl.runs').open(path) end

-- M.command(':name args') runs one command line.
function M.command(line)
  load_families()
  local name, rest = line:match('^%s*:([%w_]+)%s*(.-)%s*$')
  if not name then U.raise('mtt.repl: a command is :name [arguments], got ' .. line) end
  local cmd = registry[name]
  if not cmd then
    local names = {}
    for _, n in ipairs(M.names()) do names[#names + 1] = ':' .. n end
    U.raise(string.format("mtt.repl: unknown command ':%s' (commands: %s)", name, table.concat(names, ' ')))
  end
  local ok, err = pcall(cmd.run, rest, M.words(rest))
  io.stdout:flush()
  if not ok then
    -- Ctrl-C (repl.c's hook) raised it wherever the code was: where is of no interest
    if type(err) == 'string' and err:match(': interrupted$') then err = 'interrupted' end
    error(err, 0)
  end
end

-- Candidates for completing `line` (the text before the cursor, starting with ':'): whole
-- command names while the name is typed, else the command's own candidates for the argument
-- being typed. Returns full words (the caller keeps the part after its own word breaks).
function M.complete(line)
  load_families()
  local name = line:match('^%s*:([%w_]*)$')
  if name then
    local out = {}
    for _, n in ipairs(M.names()) do
      if n:sub(1, #name) == name then out[#out + 1] = ':' .. n end
    end
    return out
  end
  local cmd_name, rest = line:match('^%s*:([%w_]+)%s+(.*)$')
  local cmd = cmd_name and registry[cmd_name]
  if not cmd or not cmd.complete then return {} end
  local before, arg = rest:match('^(.-)(%S*)$')
  local index = #M.words(before) + 1
  local ok, list = pcall(cmd.complete, index, arg, M.words(before))
  if not ok or type(list) ~= 'table' then return {} end
  local out = {}
  for _, c in ipairs(list) do
    if type(c) == 'string' and c:sub(1, #arg) == arg then out[#out + 1] = c end
  end
  table.sort(out)
  return out
end

-- ---- :help ----
local function help(_, words)
  if words[1] then
    local name = words[1]:gsub('^:', '')
    local cmd = M.get(name)
    if not cmd then U.raise("mtt.repl: :help: unknown command ':" .. name .. "'") end
    print(string.format(':%s %s', cmd.name, cmd.usage or ''))
    print('  ' .. cmd.help)
    if cmd.details then print((cmd.details:gsub('\n', '\n  '):gsub('^', '  '))) end
    return
  end
  print('commands (:help NAME for more; Lua works as usual, =expr prints):')
  for _, n in ipairs(order) do
    local cmd = registry[n]
    local left = ':' .. n .. (cmd.usage and cmd.usage ~= '' and ' ' .. cmd.usage or '')
    -- 80 columns: a long usage gets the description on the next line
    if #left > 30 then print('  ' .. left .. '\n' .. string.rep(' ', 34) .. cmd.help)
    else print(string.format('  %-30s  %s', left, cmd.help)) end
  end
  print('keys: Tab completes names, fields, commands and their arguments; Ctrl-C interrupts; Ctrl-D exits')
end

M.register { name = 'help', usage = '[command]', help = 'list the commands, or show one in detail', run = help,
  complete = function(i)
    if i ~= 1 then return {} end
    return M.names()
  end }

return M
