-- mtt.repl.runs: run folders and their metrics: the Run object and :runs, :metrics, :plot.
--
--   local run = require('mtt.repl.runs').open('runs/pretrain-quick')   -- or a name under runs/
--   run.path, run.config, run.rows, run.keys, run.checkpoints, run.model_dir
--   run:series('loss') -> steps, values;  run:last('val_loss') -> value, step;  print(run)
--
-- A run folder is one with metrics.jsonl or a ckpt/ folder (what mtt.train writes). Rows of
-- metrics.jsonl are flattened: a nested object {"tasks": {"a": 1}} gives the key "tasks.a".
-- Values JSON cannot hold as numbers (null for NaN) are missing from the series.
jit.off(true, true)
local io_ = require 'mtt.io'
local U = require 'mtt.util'
local checkpoint = require 'mtt.checkpoint'
local repl = require 'mtt.repl'
local common = require 'mtt.repl.common'
local chart = require 'mtt.repl.chart'

local M = {}
local Run = { __name = 'mtt.Run' }
Run.__index = Run
M.Run = Run

local json
local function decoder()
  json = json or require('cjson').new()
  return json
end

local function flatten(v, prefix, out)
  for k, x in pairs(v) do
    local key = prefix and (prefix .. '.' .. tostring(k)) or tostring(k)
    if type(x) == 'table' then flatten(x, key, out) else out[key] = x end
  end
  return out
end

local function read_json(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local text = f:read('*a')
  f:close()
  local ok, v = pcall(decoder().decode, text)
  if ok and type(v) == 'table' then return v end
  return nil
end

function M.is_run(path)
  return common.exists(path .. '/metrics.jsonl') or common.is_dir(path .. '/ckpt')
end

-- Opens a run folder (a path, or a name under runs/). Reads metrics.jsonl; a line that is not
-- JSON is counted in run.bad_lines and skipped.
function M.open(name)
  local path = common.find_path(name, 'run')
  if not common.is_dir(path) then U.raise("mtt.repl: '" .. path .. "' is not a folder") end
  if not M.is_run(path) then
    U.raise("mtt.repl: '" .. path .. "' is not a run folder (no metrics.jsonl and no ckpt/)")
  end
  local self = setmetatable({ path = path, name = path:gsub('^' .. common.runs_root():gsub('%p', '%%%0') .. '/', ''),
    rows = {}, keys = {}, bad_lines = 0 }, Run)
  self.config = read_json(path .. '/config.json')
  local seen = {}
  if common.exists(path .. '/metrics.jsonl') then
    local dec = decoder()
    for line in io.lines(path .. '/metrics.jsonl') do
      if line:match('%S') then
        local ok, row = pcall(dec.decode, line)
        if ok and type(row) == 'table' then
          local flat = flatten(row, nil, {})
          self.rows[#self.rows + 1] = flat
          -- first-seen order, step first
          local ks = {}
          for k in pairs(flat) do if not seen[k] then ks[#ks + 1] = k end end
          table.sort(ks)
          for _, k in ipairs(ks) do seen[k] = true; self.keys[#self.keys + 1] = k end
        else
          self.bad_lines = self.bad_lines + 1
        end
      end
    end
  end
  for i, k in ipairs(self.keys) do
    if k == 'step' and i > 1 then table.remove(self.keys, i); table.insert(self.keys, 1, 'step'); break end
  end
  self.checkpoints = checkpoint.list(path .. '/ckpt')
  if common.exists(path .. '/model/config.json') then self.model_dir = path .. '/model' end
  return self
end

-- steps, values of the rows where key holds a number (and step too).
function Run:series(key)
  local xs, ys = {}, {}
  for _, r in ipairs(self.rows) do
    local v, s = r[key], r.step
    if type(v) == 'number' and type(s) == 'number' then xs[#xs + 1], ys[#ys + 1] = s, v end
  end
  return xs, ys
end

function Run:last(key)
  for i = #self.rows, 1, -1 do
    local v = self.rows[i][key]
    if type(v) == 'number' then return v, self.rows[i].step end
  end
  return nil
end

function Run:numeric_keys()
  local out = {}
  for _, k in ipairs(self.keys) do
    if k ~= 'step' then
      for _, r in ipairs(self.rows) do
        if type(r[k]) == 'number' then out[#out + 1] = k; break end
      end
    end
  end
  return out
end

-- Keys matching words (exact names, or globs with '*'); an unknown key is an error naming the keys.
function Run:match_keys(words)
  local out, have = {}, {}
  for _, k in ipairs(self.keys) do have[k] = true end
  for _, w in ipairs(words) do
    if w:find('*', 1, true) then
      local pat = '^' .. w:gsub('[%^%$%(%)%%%.%[%]%+%-%?]', '%%%0'):gsub('%*', '.*') .. '$'
      local n = 0
      for _, k in ipairs(self.keys) do
        if k ~= 'step' and k:match(pat) then out[#out + 1] = k; n = n + 1 end
      end
      if n == 0 then U.raise(string.format("mtt.repl: no key of %s matches '%s'", self.path, w)) end
    elseif have[w] then
      out[#out + 1] = w
    else
      U.raise(string.format("mtt.repl: %s has no key '%s' (keys: %s)", self.path, w, table.concat(self.keys, ', ')))
    end
  end
  return out
end

local function last_step(self)
  local s = self:last('step')
  if s == nil and #self.checkpoints > 0 then s = self.checkpoints[#self.checkpoints].step end
  return s
end

local function ckpt_text(self)
  local n = #self.checkpoints
  if n == 0 then return 'none' end
  local steps = {}
  for i = math.max(1, n - 4), n do steps[#steps + 1] = tostring(self.checkpoints[i].step) end
  return string.format('%d (step %s%s)', n, n > 5 and '..., ' or '', table.concat(steps, ', '))
end

-- A few lines: where, how far, last values, checkpoints, the model folder.
function Run:summary()
  local lines = { string.format('Run %s: %d metric rows, last step %s', self.path, #self.rows,
    common.num(last_step(self))) }
  local parts = {}
  for _, k in ipairs(self:numeric_keys()) do
    if #parts >= 6 then parts[#parts + 1] = '...'; break end
    local v = self:last(k)
    parts[#parts + 1] = k .. ' ' .. common.num(v)
  end
  if #parts > 0 then lines[#lines + 1] = '  last: ' .. table.concat(parts, ', ') end
  lines[#lines + 1] = '  checkpoints: ' .. ckpt_text(self)
  if self.model_dir then lines[#lines + 1] = '  model: ' .. self.model_dir end
  local c = self.config
  if c and type(c.model) == 'table' then
    local cfg = type(c.model.config) == 'table' and c.model.config or {}
    lines[#lines + 1] = string.format('  config: %s, %s parameters, %s layers, width %s; lr %s, batch %s, steps %s',
      tostring(c.model.class or '?'), common.num(c.model.num_parameters),
      common.num(cfg.n_layer or cfg.num_hidden_layers),
      common.num(cfg.n_embd or cfg.hidden_size), common.num(c.lr), common.num(c.batch_size), common.num(c.steps))
  end
  if self.bad_lines > 0 then
    lines[#lines + 1] = string.format('  (%d lines of metrics.jsonl are not JSON)', self.bad_lines)
  end
  return table.concat(lines, '\n')
end
Run.__tostring = Run.summary

-- Run folders under dir (itself included), depth first, at most `depth` levels down.
function M.find(dir, depth)
  local out = {}
  local function walk(p, d)
    if M.is_run(p) then out[#out + 1] = p end
    if d <= 0 then return end
    local ok, names = pcall(io_.listdir, p)
    if not ok then return end
    for _, n in ipairs(names) do
      local child = p .. '/' .. n
      if n ~= 'ckpt' and n ~= 'model' and n:sub(1, 1) ~= '.' and common.is_dir(child) then walk(child, d - 1) end
    end
  end
  walk(dir, depth or 3)
  return out
end

-- ---- :runs ----
local function cmd_runs(_, words)
  local dir = words[1] or common.runs_root()
  if not common.is_dir(dir) then U.raise("mtt.repl: :runs: '" .. dir .. "' is not a folder") end
  local found = M.find(dir, 3)
  if #found == 0 then
    print('no run folders under ' .. dir .. ' (a run folder has metrics.jsonl or ckpt/)')
    return
  end
  local rows = {}
  for _, p in ipairs(found) do
    local ok, run = pcall(M.open, p)
    local name = p == dir and p or p:sub(#dir + 2)
    if ok then
      local ck = #run.checkpoints > 0 and string.format('%d (last %d)', #run.checkpoints,
        run.checkpoints[#run.checkpoints].step) or '0'
      rows[#rows + 1] = { name, last_step(run) or '-', run:last('loss') or '-', run:last('val_loss') or '-', ck,
        run.model_dir and 'yes' or 'no' }
    else
      rows[#rows + 1] = { name, '?', '?', '?', '?', tostring(run):sub(1, 30) }
    end
  end
  print(common.table({ 'run', 'step', 'loss', 'val_loss', 'checkpoints', 'model/' }, rows))
end

-- ---- :metrics ----
local MAX_ROWS = 25

local function cmd_metrics(_, words)
  if not words[1] then U.raise('mtt.repl: :metrics RUN [key...]: give a run folder') end
  local run = M.open(words[1])
  if #words == 1 then
    print(run:summary())
    local rows = {}
    for _, k in ipairs(run:numeric_keys()) do
      local xs, ys = run:series(k)
      local lo, hi = math.huge, -math.huge
      for _, v in ipairs(ys) do lo, hi = math.min(lo, v), math.max(hi, v) end
      rows[#rows + 1] = { k, #ys, xs[1] or '-', ys[1] or '-', ys[#ys] or '-', #ys > 0 and lo or '-',
        #ys > 0 and hi or '-' }
    end
    if #rows == 0 then print('no numeric metrics'); return end
    print(common.table({ 'key', 'n', 'from step', 'first', 'last', 'min', 'max' }, rows))
    local other = {}
    local numeric = {}
    for _, k in ipairs(run:numeric_keys()) do numeric[k] = true end
    for _, k in ipairs(run.keys) do if k ~= 'step' and not numeric[k] then other[#other + 1] = k end end
    if #other > 0 then print('other keys: ' .. table.concat(other, ', ')) end
    print(':metrics ' .. words[1] .. ' KEY... shows the values by step; :plot ' .. words[1] .. ' KEY draws one')
    return
  end
  local keys = { 'step' }
  for _, k in ipairs(run:match_keys({ unpack(words, 2) })) do keys[#keys + 1] = k end
  local picked = {}
  for _, r in ipairs(run.rows) do
    for j = 2, #keys do
      if r[keys[j]] ~= nil then picked[#picked + 1] = r; break end
    end
  end
  local shown = picked
  if #picked > MAX_ROWS then
    local stride = (#picked - 1) / (MAX_ROWS - 1)
    shown = {}
    for i = 0, MAX_ROWS - 1 do shown[#shown + 1] = picked[math.floor(i * stride + 0.5) + 1] end
  end
  local rows = {}
  for _, r in ipairs(shown) do
    local row = {}
    for j, k in ipairs(keys) do
      local v = r[k]
      if v ~= nil and type(v) ~= 'number' then v = common.short(tostring(v), 20) end
      row[j] = v
    end
    rows[#rows + 1] = row
  end
  print(common.table(keys, rows))
  if #picked > MAX_ROWS then print(string.format('(%d of %d rows, evenly spaced)', #shown, #picked)) end
end

-- ---- :plot ----
local function cmd_plot(_, words)
  if not words[2] then U.raise('mtt.repl: :plot RUN key [key...]: give a run folder and a metric key') end
  local run = M.open(words[1])
  local series = {}
  for _, k in ipairs(run:match_keys({ unpack(words, 2) })) do
    local xs, ys = run:series(k)
    if #ys == 0 then U.raise(string.format("mtt.repl: :plot: key '%s' of %s has no numeric values", k, run.path)) end
    series[#series + 1] = { name = k, x = xs, y = ys }
  end
  local parts = {}
  for _, s in ipairs(series) do
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(s.y) do lo, hi = math.min(lo, v), math.max(hi, v) end
    parts[#parts + 1] = string.format('%s: %d points, last %s, min %s, max %s', s.name, #s.y, common.num(s.y[#s.y]),
      common.num(lo), common.num(hi))
  end
  print(run.path .. '  ' .. table.concat(parts, '; '))
  print(chart.render(series, { width = 80, height = 12, xlabel = 'step' }))
end

-- ---- completion of arguments ----
local function complete_run(arg)
  return common.complete_path(arg, { runs = true, filter = function(_, d) return d end })
end

local function complete_keys(i, arg, before)
  if i == 1 then return complete_run(arg) end
  local ok, run = pcall(M.open, before[1])
  if not ok then return {} end
  return run:numeric_keys()
end

repl.register { name = 'runs', usage = '[dir]',
  help = 'list the run folders under runs/ (step, last loss, checkpoints)',
  details = 'A run folder has metrics.jsonl or ckpt/; folders are searched 3 levels down.',
  run = cmd_runs, complete = function(i, arg) return i == 1 and complete_run(arg) or {} end }
repl.register { name = 'metrics', usage = 'RUN [key...]',
  help = 'browse metrics.jsonl: keys and last values, or a table by step',
  details = 'RUN is a folder or a name under runs/. Keys may use * (e.g. val_*). Long tables show 25 evenly\n'
    .. 'spaced rows.\n'
    .. 'In Lua: run = require("mtt.repl.runs").open(RUN); run:series(key) -> steps, values',
  run = cmd_metrics, complete = complete_keys }
repl.register { name = 'plot', usage = 'RUN key [key...]',
  help = 'draw a metric against step in the terminal (80 columns)',
  details = 'One key: Braille dots in a UTF-8 terminal; several keys (or no UTF-8): one ASCII mark per key.',
  run = cmd_plot, complete = complete_keys }

return M
