-- test_mixture.lua: mtt.data.mixture against hand-computed seqio rates, and its draws against
-- its rates.
--   1. rates: examples-proportional with and without a cap, temperature, uniform, explicit
--      weights, against the formulas written out here (and a few literal numbers);
--   2. draws: chi-square of the empirical per-task counts over N draws against the rates, for
--      proportional + cap, temperature, and a temperature schedule at two steps; the threshold
--      is the 0.999 quantile of chi-square with K - 1 degrees of freedom (Wilson-Hilferty), and
--      the same statistic against the wrong rates must exceed it (the check can fail);
--   3. determinism and resume: a draw is a function of (seed, step, slot); state()/set_state()
--      continue a sequence exactly; another seed gives other draws;
--   4. schedules, filters (name, category, wildcard), describe(), and errors naming the field.
local mtt = require 'mtt'
local mixture = mtt.data.mixture
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_mixture')
local check = checker.check
local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-12) * math.max(1, math.abs(b)) end

-- tasks with n training examples each (only #train matters to a mixture)
local function task(name, n, cats)
  local train = {}
  for i = 1, n do train[i] = i end
  return { name = name, train = train, categories = cats or {} }
end
local SIZES = { 10, 100, 1000, 5000, 20000 }
local tasks = {}
for i, n in ipairs(SIZES) do
  tasks[i] = task('t' .. i, n, { i % 2 == 0 and 'even' or 'odd', 'all' })
end

-- the rates as seqio computes them, written out: min(n, cap)^(1/T), normalized
local function expected(cap, T, weights)
  local w, total = {}, 0
  for i, n in ipairs(SIZES) do
    local r = weights and weights[i] or (cap and math.min(n, cap) or n)
    w[i] = r ^ (1 / T)
    total = total + w[i]
  end
  for i = 1, #w do w[i] = w[i] / total end
  return w
end

local function check_rates(name, mix, step, want)
  local got = mix:rates(step)
  local sum = 0
  for i = 1, #SIZES do
    check(close(got['t' .. i], want[i], 1e-12), string.format('%s: rate of t%d is %.15g, expected %.15g', name, i,
      got['t' .. i] or -1, want[i]))
    sum = sum + got['t' .. i]
  end
  check(close(sum, 1, 1e-12), name .. ': rates sum to 1')
end

-- ---- 1. rates ----
check_rates('proportional', mixture { tasks = tasks }, 1, expected(nil, 1))
check_rates('proportional cap 3000', mixture { tasks = tasks, cap = 3000 }, 1, expected(3000, 1))
check_rates('temperature 2 cap 3000', mixture { tasks = tasks, rate = 'temperature', cap = 3000, temperature = 2 }, 1,
  expected(3000, 2))
check_rates('uniform', mixture { tasks = tasks, rate = 'uniform', temperature = 3 }, 1, { 0.2, 0.2, 0.2, 0.2, 0.2 })
check_rates('weights', mixture { tasks = tasks, rate = { t1 = 1, t2 = 0, t3 = 2, t4 = 3, t5 = 4 } }, 1,
  { 0.1, 0, 0.2, 0.3, 0.4 })
-- literal values: cap 3000 gives base rates 10, 100, 1000, 3000, 3000 (sum 7110)
local r = mixture { tasks = tasks, cap = 3000 }:rates()
check(close(r.t1, 10 / 7110) and close(r.t4, 3000 / 7110), 'cap 3000: t1 = 10/7110, t4 = 3000/7110')
-- T = 2: sqrt(10), 10, sqrt(1000), sqrt(3000) twice
local s = math.sqrt(10) + 10 + math.sqrt(1000) + 2 * math.sqrt(3000)
r = mixture { tasks = tasks, cap = 3000, temperature = 2 }:rates()
check(close(r.t2, 10 / s) and close(r.t5, math.sqrt(3000) / s), 'cap 3000, T = 2: t2 = 10/s, t5 = sqrt(3000)/s')
-- a very large T tends to uniform
r = mixture { tasks = tasks, temperature = 1e6 }:rates()
check(math.abs(r.t1 - 0.2) < 1e-4 and math.abs(r.t5 - 0.2) < 1e-4, 'T = 1e6 is nearly uniform')

-- ---- 2. draws vs rates: chi-square ----
local function chi2_quantile_999(df)
  local z = 3.090232306167813 -- the standard normal's 0.999 quantile
  local a = 2 / (9 * df)
  return df * (1 - a + z * math.sqrt(a)) ^ 3
end
local function chi2(counts, p, N)
  local x = 0
  for i = 1, #p do
    local e = N * p[i]
    if e > 0 then x = x + (counts[i] - e) ^ 2 / e end
  end
  return x
end
local function counts_of(mix, step, N)
  local c = {}
  for i = 1, #SIZES do c[i] = 0 end
  for slot = 1, N do
    local t = mix:sample(step, slot)
    local i = tonumber(t.name:sub(2))
    c[i] = c[i] + 1
  end
  return c
end
local N = 40000
local limit = chi2_quantile_999(#SIZES - 1)
print(string.format('chi-square threshold (df %d, 0.999 quantile): %.3f; %d draws each', #SIZES - 1, limit, N))
local function draw_test(name, mix, step, want, wrong)
  local c = counts_of(mix, step, N)
  local x = chi2(c, want, N)
  local xw = chi2(c, wrong, N)
  print(string.format('  %-32s step %5d: chi2 %.3f (vs wrong rates %.1f); counts %s', name, step, x, xw,
    table.concat(c, ' ')))
  check(x < limit, string.format('%s: chi-square %.3f below %.3f', name, x, limit))
  check(xw > limit, string.format('%s: the wrong rates are rejected (%.3f)', name, xw))
end
draw_test('proportional, cap 3000', mixture { tasks = tasks, cap = 3000, seed = 1 }, 1, expected(3000, 1),
  expected(nil, 1))
draw_test('temperature 3, cap 3000', mixture { tasks = tasks, cap = 3000, temperature = 3, seed = 2 }, 1,
  expected(3000, 3), expected(3000, 1))
-- reverse annealing: T from 1 at step 0 to 10 at step 1000
local sched = mixture { tasks = tasks, temperature = { { 0, 1 }, { 1000, 10 } }, seed = 3 }
check(close(sched:temperature(500), 5.5) and sched:temperature(-5) == 1 and sched:temperature(5000) == 10,
  'the schedule is piecewise linear and constant outside its points')
draw_test('schedule, step 0 (T = 1)', sched, 0, expected(nil, 1), expected(nil, 10))
draw_test('schedule, step 1000 (T = 10)', sched, 1000, expected(nil, 10), expected(nil, 1))
draw_test('schedule, step 500 (T = 5.5)', sched, 500, expected(nil, 5.5), expected(nil, 10))

-- ---- 3. determinism and resume ----
local a = mixture { tasks = tasks, seed = 7 }
local b = mixture { tasks = tasks, seed = 7 }
local c = mixture { tasks = tasks, seed = 8 }
local same, differ = true, 0
for slot = 1, 200 do
  if a:sample(3, slot).name ~= b:sample(3, slot).name then same = false end
  if a:sample(3, slot).name ~= c:sample(3, slot).name then differ = differ + 1 end
end
check(same, 'the same seed draws the same tasks')
check(differ > 50, 'another seed draws other tasks (' .. differ .. ' of 200 differ)')
-- a draw does not depend on the draws before it: step 40 drawn cold == step 40 after others
local cold = mixture { tasks = tasks, seed = 7 }
local cold_names = {}
for k = 1, 5 do cold_names[k] = cold:sample(40).name end
local warm = mixture { tasks = tasks, seed = 7 }
for step = 1, 39 do for _ = 1, 3 do warm:sample(step) end end
local ok = true
for k = 1, 5 do if warm:sample(40).name ~= cold_names[k] then ok = false end end
check(ok, 'draws at step 40 are the same with or without the earlier steps drawn')
-- state / set_state mid-step
local m1 = mixture { tasks = tasks, seed = 9, temperature = 2 }
for _ = 1, 3 do m1:sample(12) end
local st = m1:state()
local rest1 = {}
for k = 1, 10 do rest1[k] = m1:sample(12 + math.floor(k / 4)).name end
local m2 = mixture { tasks = tasks, seed = 9, temperature = 2 }:set_state(st)
ok = true
for k = 1, 10 do if m2:sample(12 + math.floor(k / 4)).name ~= rest1[k] then ok = false end end
check(ok, 'set_state(state()) continues the same draws')
check(not pcall(function() mixture { tasks = tasks, seed = 10 }:set_state(st) end), 'a state from another seed is refused')

-- ---- 4. schedules, filters, describe, errors ----
local f = mixture.schedule { from = 1, to = 5, steps = 100, start = 10 }
check(f(0) == 1 and f(10) == 1 and close(f(60), 3) and f(110) == 5 and f(1e9) == 5, 'schedule{from, to, steps, start}')
check(close(mixture { tasks = tasks, temperature = function(step) return step end }:rates(2).t1,
  expected(nil, 2)[1]), 'a function of the step as temperature')
local fm = mixture { tasks = tasks, include = { 'even' } }
check(#fm.tasks == 2 and fm.tasks[1].name == 't2' and fm.tasks[2].name == 't4', 'include by category')
fm = mixture { tasks = tasks, exclude = { 't1', 'even' } }
check(#fm.tasks == 2 and fm.tasks[1].name == 't3' and fm.tasks[2].name == 't5', 'exclude by name and category')
fm = mixture { tasks = tasks, include = 't*', exclude = 't[12]' }
check(#fm.tasks == 5, 'a wildcard; brackets are literal characters, not a Lua pattern')
fm = mixture { tasks = tasks, include = { 't*' }, exclude = { '*5' } }
check(#fm.tasks == 4 and fm:rates().t5 == nil, 'exclude with a wildcard')
local d = mixture { tasks = tasks, cap = 3000, temperature = 2 }:describe(1)
local text = tostring(d)
print(text)
check(#d == 5 and d[1].p >= d[5].p and text:find('cap 3000', 1, true) and text:find('t1', 1, true),
  'describe lists every task, sorted by probability')

local function err_of(fn)
  local ok2, e = pcall(fn)
  return not ok2 and tostring(e) or ''
end
local function check_error(what, fn, pattern)
  local e = err_of(fn)
  check(e:find(pattern, 1, true) ~= nil, string.format("%s: error '%s' mentions '%s'", what, e, pattern))
end
check_error('misspelt option', function() mixture { tasks = tasks, temprature = 2 } end, "unknown option 'temprature'")
check_error('bad rate kind', function() mixture { tasks = tasks, rate = 'propotional' } end, 'propotional')
check_error('weight missing', function() mixture { tasks = tasks, rate = { t1 = 1 } } end, "no weight for task 't2'")
check_error('weight for unknown', function() mixture { tasks = tasks, rate = { t1 = 1, t2 = 1, t3 = 1, t4 = 1, t5 = 1, zz = 1 } } end,
  "'zz'")
check_error('all zero', function() mixture { tasks = tasks, rate = { t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0 } } end,
  'every rate is 0')
check_error('bad T', function() mixture { tasks = tasks, temperature = 0 } end, 'temperature')
check_error('bad schedule', function() mixture { tasks = tasks, temperature = { { 10, 1 }, { 5, 2 } } } end, 'must increase')
check_error('nothing left', function() mixture { tasks = tasks, include = { 'nope' } } end, 'no task left')
check_error('duplicate', function() mixture { tasks = { tasks[1], tasks[1] } } end, "two tasks are named 't1'")
check_error('empty task', function() mixture { tasks = { task('e', 0) } } end, "'e' has no training instances")
check_error('schedule at run time', function()
  mixture { tasks = tasks, temperature = function(step) return step > 5 and -1 or 1 end }:sample(6, 1)
end, 'temperature at step 6')

checker.done()
