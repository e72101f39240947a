-- The study pipeline end to end at toy size: recipes/quickstart.lua through the mtt command
-- (pre-training, instruction tuning with three sampling methods and replay, ICL and transfer
-- evaluations on checkpoints, the five claims' report), then checks of what it wrote:
-- the report's sections, plots and verdicts, evaluation rows in metrics.jsonl, a second run
-- that reuses every phase and evaluation, `mtt report` re-rendering the same report, and claim
-- 2's correlation recomputed from the CSV behind its plot.
local mtt = require 'mtt'
local cjson = require 'cjson'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_study')
local check = checker.check

local MTT = testlib.mtt_binary()
local dir = testlib.tmpdir()
local SETTINGS = table.concat({
  '--set dir=' .. dir, '--set pt_steps=30', '--set pt_vocab_size=512', '--set pt_n_embd=64',
  '--set pt_max_corpus_bytes=150000', '--set it_steps=12', '--set it_ckpt_steps=4,8', '--set early_step=4',
  '--set it_eval_every=6', '--set max_heldout=6', '--set eval_instances=6', '--set transfer_steps=3',
  '--set transfer_n=2,4', '--set track_n=4', '--set threads=1' }, ' ')

-- runs cmd -> ok (exit status 0), output (LuaJIT's popen:close() does not report the status,
-- so the shell appends it)
local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "exit status $?"')
  local out = p:read('*a')
  p:close()
  local status = tonumber(out:match('exit status (%d+)%s*$'))
  return status == 0, out
end

local t0 = os.time()
local ok, out = run(string.format('%s run recipes/quickstart.lua %s', MTT, SETTINGS))
check(ok, 'quickstart failed:\n' .. out:sub(-3000))
print(string.format('quickstart at toy size: %d s', os.time() - t0))

-- 1. the report
local report = dir .. '/report/report.md'
local f = io.open(report, 'rb')
check(f ~= nil, report .. ' is missing')
local md = f and f:read('*a') or ''
if f then f:close() end
for _, heading in ipairs({ '## 1. Transfer before and after', '## 2. Transfer vs in-context', '## 3. Task sampling',
  '## 4. Replay', '## 5. Early dynamics' }) do
  check(md:find(heading, 1, true), 'report.md lacks ' .. heading)
end
local verdicts = {}
for line in out:gmatch('verdict: ([^\n]+)') do verdicts[#verdicts + 1] = line end
check(#verdicts == 6, 'expected 6 verdict lines, got ' .. #verdicts)
for _, v in ipairs(verdicts) do
  check(v:match('^HOLDS: ') or v:match('^DOES NOT HOLD: ') or v:match('^INCONCLUSIVE: '), 'verdict format: ' .. v)
  check(md:find(v:match('^[^:]+: (.-) %(') or v, 1, true), 'verdict not in report.md: ' .. v)
end
for _, plot in ipairs({ 'transfer_before_after', 'transfer_vs_icl', 'task_sampling', 'replay_transfer', 'replay_icl',
  'early_dynamics_0_4', 'early_dynamics_4_12' }) do
  for _, ext in ipairs({ '.svg', '.csv' }) do
    check(mtt.io.stat(dir .. '/report/' .. plot .. ext), 'missing plot file ' .. plot .. ext)
  end
  check(md:find(plot, 1, true), 'report.md does not show ' .. plot)
end

-- 2. evaluation rows and per-task training series in the main run's metrics.jsonl
local records = mtt.train.metrics.read(dir .. '/instruct/proportional/metrics.jsonl')
local kinds, steps, task_loss, val_task_loss = {}, {}, 0, 0
for _, r in ipairs(records) do
  if r.kind then
    kinds[r.kind] = (kinds[r.kind] or 0) + 1
    steps[r.step] = true
    check(r.task and r.seed and r.metric and type(r.value) == 'number' and r.eval, 'incomplete row ' .. cjson.encode(r))
    if r.kind == 'icl' then check(r.k ~= nil, 'icl row without k') end
    if r.kind == 'transfer' then check(r.n ~= nil and r.format ~= nil, 'transfer row without n or format') end
  else
    if r.task_loss then task_loss = task_loss + 1 end
    if r.val_task_loss then val_task_loss = val_task_loss + 1 end
  end
end
check((kinds.icl or 0) > 0 and (kinds.transfer or 0) > 0, 'no icl/transfer rows in metrics.jsonl')
for _, s in ipairs({ 0, 4, 8, 12 }) do check(steps[s], 'no evaluation rows at step ' .. s) end
check(task_loss > 0 and val_task_loss > 0, 'no per-task loss series')

-- 3. a second run trains and evaluates nothing, and ends with the same verdicts
local ok2, out2 = run(string.format('%s run recipes/quickstart.lua %s', MTT, SETTINGS))
check(ok2, 'second run failed:\n' .. out2:sub(-2000))
check(not out2:find('eval of', 1, true), 'the second run evaluated again')
check(not out2:find('== pre-training', 1, true) and not out2:find('== instruction tuning', 1, true),
  'the second run trained again')
local v2 = {}
for line in out2:gmatch('verdict: ([^\n]+)') do v2[#v2 + 1] = line end
check(table.concat(v2, '\n') == table.concat(verdicts, '\n'), 'verdicts differ on the second run')

-- 4. `mtt report` re-renders the same report.md
local before = md
os.remove(report)
local ok3, out3 = run(string.format('%s report %s', MTT, dir))
check(ok3, '`mtt report` failed:\n' .. out3)
local f2 = io.open(report, 'rb')
check(f2 and f2:read('*a') == before, '`mtt report` did not rebuild the same report.md')
if f2 then f2:close() end

-- 5. claim 2's statistic recomputed from the CSV behind its table
local xs, ys = {}, {}
local csv = io.open(dir .. '/report/table_transfer_vs_icl.csv', 'rb')
check(csv ~= nil, 'table_transfer_vs_icl.csv missing')
if csv then
  local header = true
  for line in csv:lines() do
    if header then header = false else
      local _, a, b = line:match('^([^,]*),([^,]*),([^,]*)$')
      xs[#xs + 1], ys[#ys + 1] = tonumber(a), tonumber(b)
    end
  end
  csv:close()
  local r = mtt.stats.pearson(xs, ys)
  local claimed = tonumber(md:match('ICL loss vs transfer loss: Pearson r = ([%-%d%.]+)'))
  check(claimed and math.abs(claimed - r) < 2e-3, string.format('claim 2: report says r = %s, CSV gives %.4f',
    tostring(claimed), r))
  check(#xs == 6, 'claim 2 should pair 6 held-out tasks, got ' .. #xs)
end

testlib.rmdir(dir)
checker.done()
