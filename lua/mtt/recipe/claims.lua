-- The study's five claims as analyses: each runs (or reuses) the phases and evaluations it
-- needs through mtt.recipe.study, then writes a report section with a table, a plot and a
-- one-line verdict with its statistic. A verdict says what the numbers say, whether or not they
-- agree with the study.
local mtt = require 'mtt'
local study = require 'mtt.recipe.study'
local R = require 'mtt.recipe.rows'

local M = {}

local function fmt(x) return x == nil and '-' or (x ~= x and 'nan' or string.format('%.4f', x)) end
local function pstr(p) return p < 1e-4 and string.format('%.1e', p) or string.format('%.4f', p) end

-- mean and 95% CI over a list (t-based); a single value has no interval.
local function mean_ci(xs)
  if #xs < 2 then return R.mean(xs), nil, nil end
  return mtt.stats.mean_ci(xs)
end

-- task -> value of the rows matching `match` (mean over seeds)
local function per_task(rows, match)
  local by = R.by(R.where(rows, match), 'task')
  by['*'] = nil -- the evaluations' mean-over-tasks rows
  return by
end

-- The per-task differences b - a over the tasks both have, as a list in task order.
local function differences(a, b)
  local d, tasks = mtt.stats.delta(a, b)
  local list = {}
  for i, t in ipairs(tasks) do list[i] = d[t] end
  return list
end

-- Pearson r with a percentile bootstrap interval over tasks (resampling (x, y) pairs).
local function bootstrap_r(xs, ys)
  local pairs_ = {}
  for i = 1, #xs do pairs_[i] = { xs[i], ys[i] } end
  return mtt.stats.bootstrap(function(sample)
    local x, y = {}, {}
    for i, it in ipairs(sample) do x[i], y[i] = it[1], it[2] end
    return (mtt.stats.pearson(x, y))
  end, pairs_, { n = 1000, seed = 0 })
end

-- HOLDS when the interval lies on the claimed side of 0, DOES NOT HOLD when it lies on the
-- other side, INCONCLUSIVE (nil) when it contains 0 or is missing.
local function interval_holds(lo, hi)
  if lo == nil or hi == nil or lo ~= lo or hi ~= hi then return nil end
  if lo > 0 then return true end
  if hi < 0 then return false end
  return nil
end

local function correlation_verdict(report, claim, xs, ys, what, expect_positive)
  if #xs < 3 then
    return report:verdict { claim = claim, statistic = string.format('%s: only %d tasks, no correlation', what, #xs) }
  end
  local r, p = mtt.stats.pearson(xs, ys)
  local rs, ps = mtt.stats.spearman(xs, ys)
  local lo, hi = bootstrap_r(xs, ys)
  local holds = nil -- not significant at 0.05: inconclusive
  if p < 0.05 then holds = (r > 0) == expect_positive end
  return report:verdict { claim = claim, holds = holds,
    statistic = string.format('%s: Pearson r = %.3f (p = %s, 95%% bootstrap CI over tasks [%.3f, %.3f]), ' ..
      'Spearman rho = %.3f (p = %s), n = %d tasks', what, r, pstr(p), lo, hi, rs, pstr(ps), #xs) }, r, p
end

-- The mean over tasks of the rows matching `match`, with a 95% interval: over seeds (of the
-- per-seed means over tasks) when there are several seeds, else over tasks.
local function mean_over_tasks(rows, match)
  local sel = R.where(rows, match)
  local seeds = R.values(sel, 'seed')
  if #seeds > 1 then
    local means = {}
    for _, seed in ipairs(seeds) do
      local m = {}
      for t, v in pairs(R.by(R.where(sel, { seed = seed }), 'task')) do if t ~= '*' then m[#m + 1] = v end end
      means[#means + 1] = R.mean(m)
    end
    local m, lo, hi = mean_ci(means)
    local ntasks = 0
    for _, t in ipairs(R.values(sel, 'task')) do if t ~= '*' then ntasks = ntasks + 1 end end
    return m, lo, hi, ntasks, 'seeds'
  end
  local xs = {}
  for t, v in pairs(per_task(sel, {})) do xs[#xs + 1] = v end
  local m, lo, hi = mean_ci(xs)
  return m, lo, hi, #xs, 'tasks'
end

-- Claim 1: instruction tuning hurts transfer (fine-tuned loss vs n, base vs tuned, 2 encodings).
function M.transfer_before_after(cfg, report)
  local base, tuned = study.base_rows(cfg), study.tuned_rows(cfg)
  report:section('1. Transfer before and after instruction tuning')
  report:text('Each held-out task is fine-tuned from the model on n of its training instances (' ..
    cfg.transfer_steps .. ' AdamW steps, lr ' .. cfg.transfer_lr .. '), then scored on its test instances: mean ' ..
    'target loss per token (lower is better). Base = the pre-trained model, tuned = after instruction tuning ' ..
    '(proportional mixture). Error bars: 95% CI over seeds when there are several, else over held-out tasks.')
  local series, table_rows, gaps = {}, {}, {}
  for _, format in ipairs(cfg.transfer_formats) do
    for _, which in ipairs({ { 'base', base }, { 'tuned', tuned } }) do
      local s = { label = which[1] .. ' (' .. format .. ')', x = {}, y = {}, lo = {}, hi = {} }
      for _, n in ipairs(cfg.transfer_n) do
        local m, lo, hi, ntasks, over = mean_over_tasks(which[2], { kind = 'transfer', metric = 'loss', n = n,
          format = format })
        s.x[#s.x + 1], s.y[#s.y + 1], s.lo[#s.lo + 1], s.hi[#s.hi + 1] = n, m, lo or m, hi or m
        table_rows[#table_rows + 1] = { model = which[1], format = format, n = n, loss = fmt(m),
          ci95 = lo and string.format('[%s, %s] over %s', fmt(lo), fmt(hi), over) or '-', tasks = ntasks }
      end
      series[#series + 1] = s
    end
    for _, n in ipairs(cfg.transfer_n) do
      local b = per_task(base, { kind = 'transfer', metric = 'loss', n = n, format = format })
      local t = per_task(tuned, { kind = 'transfer', metric = 'loss', n = n, format = format })
      for _, gap in ipairs(differences(b, t)) do gaps[#gaps + 1] = gap end
    end
  end
  report:table { name = 'table_transfer_before_after', rows = table_rows,
    columns = { 'model', 'format', 'n', 'loss', 'ci95', 'tasks' } }
  report:plot { kind = 'line', name = 'transfer_before_after', title = 'Transfer: fine-tuned loss vs n',
    xlabel = 'fine-tuning examples n', ylabel = 'test loss after fine-tuning (nats/token)', series = series,
    logx = true }
  local m, lo, hi = mean_ci(gaps)
  return report:verdict { claim = 'Instruction tuning hurts transfer (tuned minus base fine-tuned loss > 0)',
    holds = interval_holds(lo, hi),
    statistic = string.format('mean gap %s nats/token, 95%% CI [%s, %s] over %d task x n x encoding pairs', fmt(m),
      fmt(lo), fmt(hi), #gaps) }
end

-- Claim 2: transfer and ICL on held-out tasks correlate after instruction tuning.
function M.transfer_vs_icl(cfg, report)
  local tuned = study.tuned_rows(cfg)
  local k = cfg.icl_k[#cfg.icl_k]
  local n = cfg.transfer_n[math.ceil(#cfg.transfer_n / 2)]
  local icl = per_task(tuned, { kind = 'icl', metric = 'loss', k = k })
  local tr = per_task(tuned, { kind = 'transfer', metric = 'loss', n = n, format = cfg.transfer_formats[1] })
  local tasks, xs, ys = mtt.stats.align(icl, tr)
  report:section('2. Transfer vs in-context learning across held-out tasks')
  report:text(string.format('After instruction tuning: per held-out task, the %d-shot ICL loss and the loss after ' ..
    'fine-tuning on n = %d examples (%s encoding).', k, n, cfg.transfer_formats[1]))
  local rows = {}
  for i, t in ipairs(tasks) do rows[i] = { task = t, icl_loss = fmt(xs[i]), transfer_loss = fmt(ys[i]) } end
  report:table { name = 'table_transfer_vs_icl', rows = rows, columns = { 'task', 'icl_loss', 'transfer_loss' } }
  report:plot { kind = 'scatter', name = 'transfer_vs_icl', title = 'Transfer vs ICL (held-out tasks)',
    xlabel = string.format('%d-shot ICL loss (nats/token)', k),
    ylabel = string.format('transfer loss, n = %d (nats/token)', n),
    series = { { label = 'held-out task', x = xs, y = ys, names = tasks } }, fit = true }
  return correlation_verdict(report, 'Transfer and ICL are positively correlated across held-out tasks', xs, ys,
    'ICL loss vs transfer loss', true)
end

-- Claim 3: how the training tasks are sampled changes how well they are optimized and ICL.
function M.task_sampling(cfg, report)
  report:section('3. Task sampling: how well the training tasks are optimized, and ICL')
  report:text('One instruction-tuning run per sampling method (same steps and seed). Seen-task train loss: the ' ..
    'mean over training tasks of the last logged per-task training loss; seen-task held-out loss: per-task ' ..
    'loss on held-out instances of the training tasks at the last evaluation; ICL loss: ' .. cfg.track_k ..
    '-shot loss on the held-out (unseen) tasks at the end.')
  local rows, groups = {}, {}
  local seen_val, icl_vals, icl_tasks = {}, {}, {}
  for _, method in ipairs(cfg.methods) do
    local run = study.instruct(cfg, method)
    local records = mtt.train.metrics.read(run.run_dir .. '/metrics.jsonl')
    local function final_mean(field)
      local rec = R.last_with(records, field)
      if not rec then return nil end
      local xs = {}
      for name, v in pairs(rec[field]) do if name ~= 'replay' then xs[#xs + 1] = v end end
      return R.mean(xs), xs
    end
    local train_loss = final_mean('task_loss')
    local val_loss = final_mean('val_task_loss')
    local erows = study.evaluate_icl_end(cfg, run)
    local steps = R.values(R.where(erows, { kind = 'icl' }), 'step')
    local last = steps[#steps]
    local icl = per_task(erows, { kind = 'icl', metric = 'loss', step = last, k = cfg.track_k })
    local xs = {}
    for _, v in pairs(icl) do xs[#xs + 1] = v end
    local icl_m, icl_lo, icl_hi = mean_ci(xs)
    rows[#rows + 1] = { method = method, seen_train_loss = fmt(train_loss), seen_heldout_loss = fmt(val_loss),
      unseen_icl_loss = fmt(icl_m) }
    groups[#groups + 1] = { label = method, values = { train_loss or 0 / 0, val_loss or 0 / 0, icl_m },
      lo = { train_loss or 0 / 0, val_loss or 0 / 0, icl_lo or icl_m }, hi = { train_loss or 0 / 0, val_loss or 0 / 0,
        icl_hi or icl_m } }
    seen_val[#seen_val + 1], icl_vals[#icl_vals + 1], icl_tasks[#icl_tasks + 1] = val_loss, icl_m, icl
  end
  report:table { name = 'table_task_sampling', rows = rows,
    columns = { 'method', 'seen_train_loss', 'seen_heldout_loss', 'unseen_icl_loss' } }
  report:plot { kind = 'bar', name = 'task_sampling', title = 'Losses by task-sampling method',
    ylabel = 'loss (nats/token)', categories = { 'seen train', 'seen held-out', 'unseen ICL' }, groups = groups }
  local best_seen, best_icl = 1, 1
  for i = 2, #rows do
    if seen_val[i] and seen_val[i] < seen_val[best_seen] then best_seen = i end
    if icl_vals[i] < icl_vals[best_icl] then best_icl = i end
  end
  local worst_icl = 1
  for i = 2, #rows do if icl_vals[i] > icl_vals[worst_icl] then worst_icl = i end end
  -- paired over tasks: the worst method's ICL loss minus the best one's (> 0 when they differ)
  local diffs = differences(icl_tasks[best_icl], icl_tasks[worst_icl])
  local m, lo, hi = mean_ci(diffs)
  local holds = nil
  if #rows > 1 then holds = interval_holds(lo, hi) end
  return report:verdict { claim = 'The task-sampling method changes unseen-task ICL', holds = holds,
    statistic = string.format('best seen held-out loss: %s; best unseen ICL loss: %s, worst: %s; worst minus best ' ..
      'ICL loss %s nats/token, 95%% CI over tasks [%s, %s] (n = %d tasks; %d methods, one run each; picking the ' ..
      'extremes favours a difference)', cfg.methods[best_seen], cfg.methods[best_icl], cfg.methods[worst_icl], fmt(m),
      fmt(lo), fmt(hi), #diffs, #rows) }
end

-- Claim 4: replay of pre-training data mitigates the loss of transfer and ICL.
function M.replay(cfg, report)
  report:section('4. Replay of pre-training data during instruction tuning')
  local runs = { study.instruct(cfg, 'proportional') }
  for _, r in ipairs(cfg.replay_ratios) do runs[#runs + 1] = study.instruct(cfg, 'proportional', r) end
  local tr_series, icl_series, rows, finals = {}, {}, {}, {}
  for i, run in ipairs(runs) do
    local erows = study.evaluate_track(cfg, run)
    local ratio = i == 1 and 0 or cfg.replay_ratios[i - 1]
    local label = string.format('replay %g', ratio)
    local ts = { label = label, x = {}, y = {}, lo = {}, hi = {} }
    local is = { label = label, x = {}, y = {}, lo = {}, hi = {} }
    for _, step in ipairs(R.values(erows, 'step')) do
      for _, pair in ipairs({ { ts, { kind = 'transfer', metric = 'loss', step = step, n = cfg.track_n } },
        { is, { kind = 'icl', metric = 'loss', step = step, k = cfg.track_k } } }) do
        local m, lo, hi = mean_over_tasks(erows, pair[2])
        local s = pair[1]
        s.x[#s.x + 1], s.y[#s.y + 1], s.lo[#s.lo + 1], s.hi[#s.hi + 1] = step, m, lo or m, hi or m
      end
      rows[#rows + 1] = { replay = ratio, step = step, transfer_loss = fmt(ts.y[#ts.y]), icl_loss = fmt(is.y[#is.y]) }
    end
    local steps = R.values(erows, 'step')
    finals[i] = per_task(erows, { kind = 'transfer', metric = 'loss', step = steps[#steps], n = cfg.track_n })
    tr_series[#tr_series + 1], icl_series[#icl_series + 1] = ts, is
  end
  report:text(string.format('Held-out tasks evaluated at every checkpoint: transfer loss (n = %d, id encoding) and ' ..
    '%d-shot ICL loss; step 0 is the pre-trained model. Error bars: 95%% CI over seeds when there are ' ..
    'several, else over tasks.', cfg.track_n, cfg.track_k))
  report:table { name = 'table_replay', rows = rows, columns = { 'replay', 'step', 'transfer_loss', 'icl_loss' } }
  report:plot { kind = 'line', name = 'replay_transfer', title = 'Transfer during instruction tuning',
    xlabel = 'instruction-tuning step', ylabel = 'transfer loss (nats/token)', series = tr_series }
  report:plot { kind = 'line', name = 'replay_icl', title = 'ICL during instruction tuning',
    xlabel = 'instruction-tuning step', ylabel = string.format('%d-shot ICL loss (nats/token)', cfg.track_k),
    series = icl_series }
  local best = #runs
  local diffs = differences(finals[best], finals[1])
  local m, lo, hi = mean_ci(diffs)
  return report:verdict { claim = 'Replay mitigates the loss of transfer (final transfer loss lower with replay)',
    holds = interval_holds(lo, hi),
    statistic = string.format('no-replay minus replay-%g final transfer loss: mean %s, 95%% CI [%s, %s], n = %d tasks',
      cfg.replay_ratios[best - 1] or 0, fmt(m), fmt(lo), fmt(hi), #diffs) }
end

-- Claim 5: early in instruction tuning, the change in transfer predicts the change in ICL.
function M.early_dynamics(cfg, report)
  report:section('5. Early dynamics: change in transfer vs change in ICL')
  local run = study.instruct(cfg, 'proportional')
  local erows = study.evaluate_track(cfg, run)
  local steps = R.values(erows, 'step')
  local last, early = steps[#steps], cfg.early_step
  local function at(kind, step)
    if kind == 'icl' then return per_task(erows, { kind = 'icl', metric = 'loss', step = step, k = cfg.track_k }) end
    return per_task(erows, { kind = 'transfer', metric = 'loss', step = step, n = cfg.track_n })
  end
  local verdicts = {}
  for i, window in ipairs({ { 0, early }, { early, last } }) do
    local t0, t1 = at('transfer', window[1]), at('transfer', window[2])
    local i0, i1 = at('icl', window[1]), at('icl', window[2])
    local tasks, xs, ys = mtt.stats.align((mtt.stats.delta(t0, t1)), (mtt.stats.delta(i0, i1)))
    local name = string.format('early_dynamics_%d_%d', window[1], window[2])
    local rows = {}
    for j, t in ipairs(tasks) do rows[j] = { task = t, d_transfer = fmt(xs[j]), d_icl = fmt(ys[j]) } end
    report:table { name = 'table_' .. name, rows = rows, columns = { 'task', 'd_transfer', 'd_icl' } }
    report:plot { kind = 'scatter', name = name, title = string.format('Change from step %d to %d', window[1], window[2]),
      xlabel = 'change in transfer loss (nats/token)', ylabel = 'change in ICL loss (nats/token)',
      series = { { label = 'held-out task', x = xs, y = ys, names = tasks } }, fit = true }
    verdicts[i] = correlation_verdict(report, string.format('Step %d -> %d: the change in transfer predicts the ' ..
      'change in ICL', window[1], window[2]), xs, ys, 'delta transfer vs delta ICL', true)
  end
  return verdicts[1], verdicts[2]
end

M.ALL = { 'transfer_before_after', 'transfer_vs_icl', 'task_sampling', 'replay', 'early_dynamics' }

-- Runs the named claims (default: all) into report (mtt.report.new(dir)); returns the verdicts.
function M.run(cfg, names, report)
  local verdicts = {}
  for _, name in ipairs(names or M.ALL) do
    local f = M[name] or error('mtt.recipe.claims: no claim ' .. tostring(name), 0)
    local t0 = os.time()
    print(string.format('== claim: %s', name))
    local v1, v2 = f(cfg, report)
    verdicts[#verdicts + 1] = v1
    if v2 and type(v2) ~= 'number' then verdicts[#verdicts + 1] = v2 end
    print(string.format('   (%d s)', os.time() - t0))
  end
  return verdicts
end

return M
