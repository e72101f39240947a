-- test_repl_commands.lua: the parts of the REPL's `:` commands that need no terminal (the pty
-- tests are test_repl.py and test_repl_explore.py): argument words, the text chart (against
-- positions computed here from the chart's stated mapping), tables, run folders and their
-- metrics, completion of commands and arguments, summaries printed by mtt.show, errors.
local mtt = require 'mtt'
local repl = require 'mtt.repl'
local chart = require 'mtt.repl.chart'
local common = require 'mtt.repl.common'
local runs = require 'mtt.repl.runs'
local complete = require 'mtt.complete'
local show = require 'mtt.show'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_repl_commands')
-- extra: shown under the message when the check fails (the text a chart or table came out as)
local function check(cond, msg, extra)
  return checker.check(cond, extra and msg .. '\n' .. tostring(extra) or msg)
end
local function same(a, b) return table.concat(a, '\1') == table.concat(b, '\1') end

-- ---- words ----
check(same(repl.words([[a  "b c" 'd e' f]]), { 'a', 'b c', 'd e', 'f' }), 'words with quotes')
check(not pcall(repl.words, 'a "b'), 'an unclosed quote is an error')

-- ---- chart: ASCII marks where the mapping puts them ----
do
  local xs, ys = {}, {}
  for i = 0, 9 do xs[#xs + 1], ys[#ys + 1] = i * 10, i * i end
  local width, height = 60, 10
  local text = chart.render({ { name = 'sq', x = xs, y = ys } }, { width = width, height = height, unicode = false,
    lines = false })
  local lines = {}
  for l in (text .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = l end
  check(#lines == height + 2, 'chart: height rows + axis + x labels', text)
  for _, l in ipairs(lines) do check(#l <= width, 'chart: a line longer than the width', l) end
  local lw = #'40.5' -- labels: 81, 40.5, 0, right-aligned
  check(lines[1]:match('^  81 |'), 'chart: top label is the max', lines[1])
  check(lines[height]:match('^   0 |'), 'chart: bottom label is the min', lines[height])
  check(lines[height + 2]:match('^%s+0%s+90$'), 'chart: x labels are the x range', lines[height + 2])
  local cols = width - lw - 2
  local want = {}
  for i = 1, #xs do
    local c = math.floor(xs[i] / 90 * (cols - 1) + 0.5)
    local r = math.floor((81 - ys[i]) / 81 * (height - 1) + 0.5)
    want[r * 1000 + c] = true
  end
  local marks = 0
  for r = 0, height - 1 do
    for c = 0, cols - 1 do
      local ch = lines[r + 1]:sub(lw + 3 + c, lw + 3 + c)
      if ch == '*' then marks = marks + 1 end
      if want[r * 1000 + c] then check(ch == '*', string.format('chart: a point at row %d col %d', r, c), text) end
    end
  end
  check(marks == #xs, 'chart: exactly one mark per point', text)
  -- with lines: the points are joined (more marks, every column between the ends has one)
  local joined = chart.render({ { name = 'sq', x = xs, y = ys } }, { width = width, height = height, unicode = false })
  local _, n = joined:gsub('%*', '')
  check(n >= cols, 'chart: joined points cover every column', joined)
  -- two series: two marks and a legend
  local two = chart.render({ { name = 'a', x = { 1, 2 }, y = { 1, 2 } }, { name = 'b', x = { 1, 2 }, y = { 2, 1 } } },
    { width = 40, height = 6, unicode = true })
  check(two:find('* a   + b', 1, true) and two:find('+', 1, true), 'chart: legend of two series', two)
  -- Braille: a constant series is one horizontal run of dots in the middle row
  local flat = chart.render({ { name = 'c', x = { 0, 1 }, y = { 2, 2 } } }, { width = 30, height = 5, unicode = true })
  local rows = {}
  for l in (flat .. '\n'):gmatch('(.-)\n') do rows[#rows + 1] = l end
  check(rows[3]:find('\226\160', 1, true) and not rows[1]:find('\226\160', 1, true), 'chart: braille middle row', flat)
  check(not pcall(chart.render, {}, {}), 'chart: no series is an error')
  check(not pcall(chart.render, { { name = 'n', x = { 1 }, y = { 0 / 0 } } }), 'chart: only NaN is an error')
end

-- ---- tables and numbers ----
check(common.num(3) == '3' and common.num(0.123456) == '0.1235' and common.num(nil) == '-', 'num')
local t = common.table({ 'name', 'v' }, { { 'a', 1.5 }, { 'bbb', 10 } })
check(t == 'name    v\n----  ---\na     1.5\nbbb    10', 'table: numbers right-aligned', t)

-- ---- run folders ----
local tmp = testlib.tmpdir()
mtt.io.makedirs(tmp .. '/r1/ckpt')
do
  local f = assert(io.open(tmp .. '/r1/metrics.jsonl', 'w'))
  f:write('{"step":1,"loss":3.5,"eval":{"t1":0.25,"t2":0.5}}\n', 'garbage\n', '{"step":2,"loss":2.5,"val_loss":2.75}\n',
    '{"step":3,"loss":null}\n')
  f:close()
  local run = runs.open(tmp .. '/r1')
  check(#run.rows == 3 and run.bad_lines == 1, 'run: rows and bad lines')
  check(run.keys[1] == 'step', 'run: step is the first key')
  local xs, ys = run:series('loss')
  check(same(xs, { 1, 2 }) and same(ys, { 3.5, 2.5 }), 'run: series skips null')
  check(run:last('val_loss') == 2.75 and run:last('eval.t2') == 0.5, 'run: last and flattened keys')
  check(same(run:match_keys({ 'eval.*' }), { 'eval.t1', 'eval.t2' }), 'run: glob keys')
  local ok, err = pcall(run.match_keys, run, { 'nope' })
  check(not ok and tostring(err):find("no key 'nope'", 1, true) and tostring(err):find('val_loss', 1, true),
    'run: an unknown key names the keys', err)
  check(tostring(run):find('Run ' .. tmp .. '/r1: 3 metric rows, last step 3', 1, true), 'run: summary', tostring(run))
  check(#runs.find(tmp, 3) == 1, 'run: find')
  ok, err = pcall(runs.open, tmp .. '/none')
  check(not ok and tostring(err):find('not found', 1, true), 'run: a missing folder', err)
end

-- ---- :metrics on a long run: 25 evenly spaced rows, the first and the last among them ----
do
  mtt.io.makedirs(tmp .. '/long')
  local f = assert(io.open(tmp .. '/long/metrics.jsonl', 'w'))
  for step = 1, 100 do f:write(string.format('{"step":%d,"loss":%g}\n', step, 1000 + step)) end
  f:close()
  local captured = {}
  local real_print = print
  _G.print = function(...) captured[#captured + 1] = table.concat({ ... }, '\t') end
  local ok, err = pcall(repl.command, ':metrics ' .. tmp .. '/long loss')
  _G.print = real_print
  check(ok, ':metrics long run', err)
  local text = table.concat(captured, '\n')
  local steps = {}
  for step, loss in text:gmatch('\n%s*(%d+)%s+(%d+)') do
    steps[#steps + 1] = tonumber(step)
    check(tonumber(loss) == 1000 + tonumber(step), ':metrics: the loss of its own step', text)
  end
  check(#steps == 25 and steps[1] == 1 and steps[25] == 100, ':metrics: 25 rows from 1 to 100', text)
  check(text:find('(25 of 100 rows, evenly spaced)', 1, true), ':metrics: says rows were left out', text)
end

-- ---- completion ----
check(same(complete(':he', nil, ':he'), { ':help' }), 'complete: a command')
check(same(complete(':pl', nil, ':pl'), { ':plot' }), 'complete: another command')
check(same(complete('lo', nil, ':metrics ' .. tmp .. '/r1 lo'), { 'loss' }), 'complete: a metric key')
local base = tmp:match('([^/]*)$')
check(same(complete('r', nil, ':metrics ' .. tmp .. '/r'), { 'r1/' }), 'complete: a path after a break character')
check(same(complete('mtt.zeros_l', { mtt = mtt }, 'x = mtt.zeros_l'), { 'mtt.zeros_like' }),
  'complete: Lua still works')
check(base ~= nil, 'tmp name')

-- ---- commands: errors ----
local ok, err = pcall(repl.command, ':nosuch')
check(not ok and tostring(err):find("unknown command ':nosuch'", 1, true) and tostring(err):find(':plot', 1, true),
  'command: unknown names the commands', err)
ok, err = pcall(repl.command, ':plot')
check(not ok and tostring(err):find('give a run folder', 1, true), 'command: missing argument', err)

-- ---- summaries ----
local gpt = mtt.nn.GPT({ vocab_size = 16, n_positions = 8, n_embd = 8, n_layer = 1, n_head = 2 })
check(show(gpt):find('GPT: ' .. gpt:num_parameters() .. ' parameters', 1, true), 'show: a model', show(gpt))
check(show({ gpt }):match('^{GPT%(%d+ parameters%)}$'), 'show: a model inside a table stays short', show({ gpt }))
local task = mtt.tasks.define { name = 'toy_copy', definition = 'Copy the input.', n = 12, seed = 1,
  generate = function(_, i) return 'w' .. i, 'w' .. i end }
check(show(task):find('definition: Copy the input.', 1, true), 'show: a task', show(task))
check(show({ task, task }):find('  2  Task(toy_copy', 1, true), 'show: a list of tasks', show({ task, task }))
check(show(1, 'a') == '1\ta', 'show: several values on one line')

testlib.rmdir(tmp)
checker.done('(words, chart, tables, run folders, completion, command errors and summaries)')
