-- test_stats.lua: mtt.stats against closed forms worked by hand and against scipy.stats
-- (python3-scipy, a TEST package of build.sh) computed in this run on the same inputs:
-- pearsonr, spearmanr (ties), t.cdf/t.ppf, betainc, t.interval, numpy.percentile, and the
-- percentile bootstrap on the very resamples mtt drew. p-values and cdfs to 1e-9 relative, quantiles to 1e-7 (scipy's own t.ppf error).
local ffi = require 'ffi'
local mtt = require 'mtt'
local cjson = require('cjson').new()
local S = mtt.stats
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_stats', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local function rel(a, b, tol, what)
  local ok = (a == b) or math.abs(a - b) <= tol * math.max(math.abs(a), math.abs(b), 1e-300)
  check(ok, string.format('%s: got %.17g, expected %.17g (rel tol %g)', what, a, b, tol))
end
local function abs_near(a, b, tol, what)
  check(math.abs(a - b) <= tol, string.format('%s: got %.17g, expected %.17g (abs tol %g)', what, a, b, tol))
end

-- By hand ---------------------------------------------------------------------------------
-- x = 1..5, y = 2,1,4,3,5: dx = dy-free sums: sxy = 2+2+0+0+4 = 8, sxx = syy = 10 -> r = 0.8.
-- df = 3, t = r sqrt(3/(1-r^2)) = 0.8 sqrt(3)/0.6, t/sqrt(3) = 4/3; for 3 df the two-sided
-- p = 1 - (2/pi) (atan(t/sqrt3) + (t/sqrt3)/(1 + t^2/3)) = 1 - (2/pi)(atan(4/3) + 12/25).
local r, p = S.pearson({ 1, 2, 3, 4, 5 }, { 2, 1, 4, 3, 5 })
abs_near(r, 0.8, 1e-15, 'pearson r by hand')
rel(p, 1 - (2 / math.pi) * (math.atan(4 / 3) + 12 / 25), 1e-12, 'pearson p by hand (df 3)')
-- n = 3, df = 1 (Cauchy): x = 1,2,3, y = 1,3,2: sxy = (-1)(-1)+0+(1)(0) = 1, sxx = syy = 2 ->
-- r = 1/2, t = 0.5 sqrt(1/0.75) = 1/sqrt3, p = 1 - (2/pi) atan(1/sqrt3) = 1 - (2/pi)(pi/6) = 2/3.
r, p = S.pearson({ 1, 2, 3 }, { 1, 3, 2 })
abs_near(r, 0.5, 1e-15, 'pearson r n=3'); rel(p, 2 / 3, 1e-12, 'pearson p n=3 (= 2/3)')
-- Spearman with ties: x = 1,2,2,4 -> ranks 1, 2.5, 2.5, 4; y = 10,20,30,40 -> 1,2,3,4.
-- centred: (-1.5, 0, 0, 1.5) and (-1.5, -.5, .5, 1.5): sxy = 4.5, sxx = 4.5, syy = 5 ->
-- rho = 4.5/sqrt(22.5) = 0.9486832980505138.
r = S.spearman({ 1, 2, 2, 4 }, { 10, 20, 30, 40 })
abs_near(r, 4.5 / math.sqrt(22.5), 1e-15, 'spearman with ties by hand')
local rk = S.rank({ 3, 1, 3, 2, 3 })
check(rk[1] == 4 and rk[2] == 1 and rk[3] == 4 and rk[4] == 2 and rk[5] == 4, 'average ranks')
-- t_cdf with 1 df is the Cauchy cdf 1/2 + atan(t)/pi; with 2 df it is 1/2 + t/(2 sqrt(2 + t^2)).
rel(S.t_cdf(1.7, 1), 0.5 + math.atan(1.7) / math.pi, 1e-13, 't_cdf df 1')
rel(S.t_cdf(-0.3, 2), 0.5 - 0.3 / (2 * math.sqrt(2.09)), 1e-13, 't_cdf df 2')
rel(S.t_ppf(0.75, 1), 1, 1e-12, 't_ppf Cauchy quartile = tan(pi/4) = 1')
-- mean_ci of 1..5: mean 3, sd = sqrt(10/4), half width = t_{.975,4} sd / sqrt5.
local m, lo, hi = S.mean_ci({ 1, 2, 3, 4, 5 })
check(m == 3, 'mean_ci mean'); rel(hi - m, S.t_ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5), 1e-13, 'mean_ci half width')
m, lo, hi = S.mean_ci({ 7 })
check(m == 7 and lo ~= lo and hi ~= hi, 'mean_ci of one value: nan interval')
r, p = S.pearson({ 1, 1, 1 }, { 1, 2, 3 })
check(r ~= r and p ~= p, 'pearson of a constant: nan')
local a, b = S.linear_fit({ 0, 1, 2 }, { 1, 3, 5 })
check(math.abs(a - 1) < 1e-15 and math.abs(b - 2) < 1e-15, 'linear_fit y = 1 + 2x')
-- delta / align by key
local d, ks = S.delta({ t1 = 0.5, t2 = 0.25, t3 = 1 }, { t1 = 0.75, t2 = 0, t4 = 9 })
check(#ks == 2 and ks[1] == 't1' and ks[2] == 't2' and d.t1 == 0.25 and d.t2 == -0.25 and d.t3 == nil, 'delta by key')
local keys, xs, ys = S.align({ b = 2, a = 1, c = 3 }, { c = 30, a = 10 })
check(#keys == 2 and keys[1] == 'a' and xs[2] == 3 and ys[2] == 30, 'align by key')
-- errors
expect_error('pearson lengths', 'x and y differ in length (3 and 2)', S.pearson, { 1, 2, 3 }, { 1, 2 })
expect_error('pearson short', 'x needs at least 2 values, got 1', S.pearson, { 1 }, { 1 })
expect_error('pearson type', 'y[2] must be a number, got string', S.pearson, { 1, 2 }, { 1, 'a' })
expect_error('bootstrap opts', "unknown option 'reps'", S.bootstrap, S.mean, { 1, 2 }, { reps = 3 })
expect_error('mean_ci empty', 'xs needs at least 1 values, got 0', S.mean_ci, {})
expect_error('delta type', "b['x'] must be a number", S.delta, { x = 1 }, { x = 'a' })

-- Bootstrap: deterministic per seed, a constant statistic gives a point interval.
local data = {}
for i = 1, 12 do data[i] = (i * 7) % 11 + 0.5 * i end
local l1, h1 = S.bootstrap(S.mean, data, { n = 500, seed = 3 })
local l2, h2 = S.bootstrap(S.mean, data, { n = 500, seed = 3 })
local l3 = S.bootstrap(S.mean, data, { n = 500, seed = 4 })
check(l1 == l2 and h1 == h2, 'bootstrap: same seed, same interval')
check(l1 ~= l3, 'bootstrap: another seed, another interval')
check(l1 < S.mean(data) and S.mean(data) < h1, 'bootstrap interval contains the mean')
local cl, ch = S.bootstrap(S.mean, { 2, 2, 2 }, { n = 50 })
check(cl == 2 and ch == 2, 'bootstrap of constant data')
local _, _, info = S.bootstrap(function(s)
  local xs, ys = {}, {}
  for i, it in ipairs(s) do xs[i] = it[1]; ys[i] = it[2] end
  return (S.pearson(xs, ys))
end, { { 1, 1 }, { 2, 3 }, { 3, 2 } }, { n = 200, seed = 1 })
check(info.dropped > 0 and info.n + info.dropped == 200, 'bootstrap drops non-finite resamples (constant samples)')

-- Against scipy ---------------------------------------------------------------------------
local gen = mtt.Generator(2024)
local function randn(n) return mtt.randn({ n }, { generator = gen, dtype = 'f64' }):totable() end
local cases = { pearson = {}, spearman = {}, t = {}, beta = {}, ci = {}, quant = {} }
for _, n in ipairs({ 3, 4, 5, 8, 12, 30, 100, 1000 }) do
  for _, rho in ipairs({ 0, 0.3, -0.6, 0.95 }) do
    local x, e = randn(n), randn(n)
    local y = {}
    for i = 1, n do y[i] = rho * x[i] + math.sqrt(1 - rho * rho) * e[i] end
    table.insert(cases.pearson, { x, y })
    local xi, yi = {}, {} -- rounded: many ties
    for i = 1, n do xi[i] = math.floor(x[i] * 2); yi[i] = math.floor(y[i] * 2) end
    table.insert(cases.spearman, { x, y }); table.insert(cases.spearman, { xi, yi })
  end
end
for _, df in ipairs({ 1, 2, 3, 5, 10, 30, 200, 1e5 }) do
  for _, t in ipairs({ -40, -3.1, -1, -0.05, 0, 0.2, 1.96, 4.5, 12 }) do table.insert(cases.t, { 'cdf', t, df }) end
  for _, q in ipairs({ 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.9995 }) do table.insert(cases.t, { 'ppf', q, df }) end
end
for _, ab in ipairs({ { 0.5, 0.5 }, { 1.5, 0.5 }, { 10, 0.5 }, { 2, 3 }, { 50, 40 }, { 0.1, 7 }, { 500, 0.5 } }) do
  for _, x in ipairs({ 1e-8, 0.01, 0.2, 0.5, 0.77, 0.99, 0.9999 }) do table.insert(cases.beta, { ab[1], ab[2], x }) end
end
for _, n in ipairs({ 2, 3, 5, 10, 40 }) do
  for _, alpha in ipairs({ 0.05, 0.1, 0.32 }) do table.insert(cases.ci, { randn(n), alpha }) end
end
for _, n in ipairs({ 1, 2, 7, 100 }) do
  for _, q in ipairs({ 0, 0.025, 0.5, 0.975, 1 }) do table.insert(cases.quant, { randn(n), q }) end
end
-- the bootstrap: the statistic on each resample mtt draws, computed again from the indices
local bdata = randn(15)
local B, bseed = 400, 11
local bidx = mtt.randint(0, #bdata, { B, #bdata }, { generator = mtt.Generator(bseed) }):totable()
local bstats = {}
for i = 1, B do
  local s = {}
  for j = 1, #bdata do s[j] = bdata[bidx[i][j] + 1] end
  bstats[i] = S.mean(s)
end
cases.boot = { stats = bstats, alpha = 0.1 }

local dir = testlib.tmpdir()
local f = assert(io.open(dir .. '/in.json', 'w')); f:write(cjson.encode(cases)); f:close()
f = assert(io.open(dir .. '/ref.py', 'w'))
f:write([==[
import json, sys
import numpy as np
from scipy import stats, special
c = json.load(open(sys.argv[1]))
out = {}
out['pearson'] = [list(map(float, stats.pearsonr(x, y))) for x, y in c['pearson']]
out['spearman'] = [list(map(float, stats.spearmanr(x, y))) for x, y in c['spearman']]
out['t'] = [float(stats.t.cdf(v, df) if k == 'cdf' else stats.t.ppf(v, df)) for k, v, df in c['t']]
out['beta'] = [float(special.betainc(a, b, x)) for a, b, x in c['beta']]
out['ci'] = [[float(np.mean(x))] + list(map(float, stats.t.interval(1 - a, len(x) - 1, loc=np.mean(x), scale=stats.sem(x)))) for x, a in c['ci']]
out['quant'] = [float(np.percentile(x, 100 * q)) for x, q in c['quant']]
b = c['boot']
out['boot'] = [float(np.percentile(b['stats'], 100 * b['alpha'] / 2)), float(np.percentile(b['stats'], 100 * (1 - b['alpha'] / 2)))]
json.dump(out, open(sys.argv[2], 'w'))
]==]); f:close()
local ok = os.execute(string.format('/usr/bin/python3 %s/ref.py %s/in.json %s/out.json', dir, dir, dir))
check(ok == 0 or ok == true, 'scipy reference failed (needs python3-scipy: ./build.sh deps test)')
f = assert(io.open(dir .. '/out.json')); local ref = cjson.decode(f:read('*a')); f:close()
testlib.rmdir(dir)

local minp = 1
for i, c in ipairs(cases.pearson) do
  local rr, pp = S.pearson(c[1], c[2])
  abs_near(rr, ref.pearson[i][1], 1e-12, 'pearson r case ' .. i)
  rel(pp, ref.pearson[i][2], 1e-9, 'pearson p case ' .. i .. ' (n ' .. #c[1] .. ')')
  if pp > 0 then minp = math.min(minp, pp) end
end
for i, c in ipairs(cases.spearman) do
  local rr, pp = S.spearman(c[1], c[2])
  abs_near(rr, ref.spearman[i][1], 1e-12, 'spearman r case ' .. i)
  if math.abs(rr) > 1 - 1e-12 then
    -- identical rankings: rho = 1 exactly, p = 0; scipy's rounding leaves 1 - 1e-16 and p ~1e-24
    check(pp < 1e-15 and ref.spearman[i][2] < 1e-15, 'spearman p of identical rankings ' .. i)
  else
    rel(pp, ref.spearman[i][2], 1e-9, 'spearman p case ' .. i .. ' (n ' .. #c[1] .. ')')
  end
end
for i, c in ipairs(cases.t) do
  local v = c[1] == 'cdf' and S.t_cdf(c[2], c[3]) or S.t_ppf(c[2], c[3])
  if c[1] == 'ppf' and c[2] == 0.5 then abs_near(v, ref.t[i], 1e-15, 't.ppf(0.5) = 0') -- scipy: 8e-17
  elseif c[1] == 'cdf' then rel(v, ref.t[i], 1e-9, string.format('t.cdf(%g, df %g)', c[2], c[3]))
  else
    -- scipy's t.ppf itself is only good to ~1e-9 in probability (t.cdf(t.ppf(q)) - q; e.g.
    -- df 1, q .9995: scipy 636.61924943, exact cot(.0005 pi) = 636.61924877), hence 1e-7 here
    -- and a round trip through our cdf (checked against scipy's above) to 1e-12.
    rel(v, ref.t[i], 1e-7, string.format('t.ppf(%g, df %g)', c[2], c[3]))
    local q = S.t_cdf(v, c[3])
    rel(math.min(q, 1 - q), math.min(c[2], 1 - c[2]), 1e-11, string.format('t.cdf(t.ppf(%g)) df %g', c[2], c[3]))
  end
end
for i, c in ipairs(cases.beta) do rel(S.betainc(c[1], c[2], c[3]), ref.beta[i], 1e-9, string.format('betainc(%g, %g, %g)', c[1], c[2], c[3])) end
for i, c in ipairs(cases.ci) do
  local mm, ll, hh = S.mean_ci(c[1], { alpha = c[2] })
  rel(mm, ref.ci[i][1], 1e-12, 'mean_ci mean ' .. i)
  -- the interval rests on t.ppf: scipy's is good to ~1e-9 (see above), hence 1e-7
  rel(ll, ref.ci[i][2], 1e-7, 'mean_ci lo ' .. i); rel(hh, ref.ci[i][3], 1e-7, 'mean_ci hi ' .. i)
end
for i, c in ipairs(cases.quant) do rel(S.quantile(c[1], c[2]), ref.quant[i], 1e-12, 'quantile ' .. i) end
local blo, bhi = S.bootstrap(S.mean, bdata, { n = B, seed = bseed, alpha = 0.1 })
rel(blo, ref.boot[1], 1e-12, 'bootstrap lo vs numpy percentile of the same resamples')
rel(bhi, ref.boot[2], 1e-12, 'bootstrap hi vs numpy percentile of the same resamples')
print(string.format('scipy: %d pearson, %d spearman, %d t, %d betainc, %d t-interval cases agree (smallest nonzero p %.3g)',
  #cases.pearson, #cases.spearman, #cases.t, #cases.beta, #cases.ci, minp))
checker.done()
