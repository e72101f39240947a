-- mtt.stats: the statistics the study's claims rest on: Pearson and Spearman r with two-sided
-- p-values (the t distribution through the regularized incomplete beta function), t-based means
-- with confidence intervals over seeds, percentile bootstrap intervals (resampling tasks) and
-- per-key changes between two checkpoints. Conventions follow scipy.stats (pearsonr, spearmanr,
-- t.interval, bootstrap(method='percentile')), which the tests compare against.
local ffi = require 'ffi'
local U = require 'mtt.util'
local options = require 'mtt.options'

pcall(ffi.cdef, 'double lgamma(double x);')
local lgamma = ffi.C.lgamma

local S = {}
local nan = 0 / 0

local function is_finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

local function numbers(fname, what, xs, min_n)
  if type(xs) ~= 'table' then U.raise(string.format('%s: %s must be an array of numbers, got %s', fname, what, type(xs))) end
  for i = 1, #xs do
    if type(xs[i]) ~= 'number' then
      U.raise(string.format('%s: %s[%d] must be a number, got %s', fname, what, i, type(xs[i])))
    end
  end
  if #xs < (min_n or 1) then
    U.raise(string.format('%s: %s needs at least %d values, got %d', fname, what, min_n or 1, #xs))
  end
  return xs
end

local function pair(fname, x, y)
  numbers(fname, 'x', x, 2); numbers(fname, 'y', y, 2)
  if #x ~= #y then U.raise(string.format('%s: x and y differ in length (%d and %d)', fname, #x, #y)) end
end

-- Special functions ---------------------------------------------------------------------

-- Continued fraction of I_x(a, b) (modified Lentz), good for x < (a + 1) / (a + b + 2).
local function betacf(a, b, x)
  local tiny = 1e-300
  local c, d = 1, 1 - (a + b) * x / (a + 1)
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 10000 do
    local m2 = 2 * m
    local num = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
    d = 1 + num * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d; h = h * d * c
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
    d = 1 + num * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < 1e-16 then return h end
  end
  return h
end

-- Regularized incomplete beta I_x(a, b); y = 1 - x may be given exactly to avoid cancellation.
function S.betainc(a, b, x, y)
  y = y or (1 - x)
  if not (a > 0 and b > 0) then U.raise(string.format('mtt.stats.betainc: a and b must be > 0, got %s and %s', a, b)) end
  if x <= 0 then return 0 end
  if y <= 0 then return 1 end
  local lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * math.log(x) + b * math.log(y)
  if x < (a + 1) / (a + b + 2) then
    return math.exp(lfront) * betacf(a, b, x) / a
  end
  return 1 - math.exp(lfront) * betacf(b, a, y) / b
end

-- Student's t: cdf and upper tail.
function S.t_sf(t, df)
  if t ~= t then return nan end
  local t2 = t * t
  -- tail = P(T > |t|) = I_{df/(df+t^2)}(df/2, 1/2) / 2
  local tail = 0.5 * S.betainc(df / 2, 0.5, df / (df + t2), t2 / (df + t2))
  return t >= 0 and tail or 1 - tail
end
function S.t_cdf(t, df) return S.t_sf(-t, df) end

-- Quantile of Student's t (bisection on the cdf to the precision of a double).
function S.t_ppf(p, df)
  if not (p > 0 and p < 1) then
    if p == 0 then return -math.huge elseif p == 1 then return math.huge end
    U.raise('mtt.stats.t_ppf: p must be in [0, 1], got ' .. tostring(p))
  end
  if p == 0.5 then return 0 end
  if p < 0.5 then return -S.t_ppf(1 - p, df) end
  local lo, hi = 0, 1
  while S.t_cdf(hi, df) < p do lo = hi; hi = hi * 2 end
  for _ = 1, 200 do
    local mid = 0.5 * (lo + hi)
    if mid == lo or mid == hi then break end
    if S.t_cdf(mid, df) < p then lo = mid else hi = mid end
  end
  return 0.5 * (lo + hi)
end

-- Descriptive --------------------------------------------------------------------------------

function S.mean(xs)
  numbers('mtt.stats.mean', 'xs', xs, 1)
  local s = 0
  for i = 1, #xs do s = s + xs[i] end
  return s / #xs
end

-- Sample standard deviation (n - 1 in the denominator); nan for one value.
function S.std(xs)
  local m = S.mean(xs)
  if #xs < 2 then return nan end
  local s = 0
  for i = 1, #xs do s = s + (xs[i] - m) ^ 2 end
  return math.sqrt(s / (#xs - 1))
end

-- q-quantile with linear interpolation between order statistics (numpy's default).
function S.quantile(xs, q)
  numbers('mtt.stats.quantile', 'xs', xs, 1)
  local v = {}
  for i = 1, #xs do v[i] = xs[i] end
  table.sort(v)
  local h = (#v - 1) * q
  local i = math.floor(h)
  if i + 1 >= #v then return v[#v] end
  return v[i + 1] + (h - i) * (v[i + 2] - v[i + 1])
end

-- Ranks 1..n, ties given the average of the ranks they span (scipy's rankdata 'average').
function S.rank(xs)
  numbers('mtt.stats.rank', 'xs', xs, 1)
  local order = {}
  for i = 1, #xs do order[i] = i end
  table.sort(order, function(a, b) if xs[a] ~= xs[b] then return xs[a] < xs[b] end return a < b end)
  local r, i = {}, 1
  while i <= #order do
    local j = i
    while j < #order and xs[order[j + 1]] == xs[order[i]] do j = j + 1 end
    local avg = (i + j) / 2
    for k = i, j do r[order[k]] = avg end
    i = j + 1
  end
  return r
end

-- Mean and the (1 - alpha) t interval over seeds: mean +- t_{1-alpha/2, n-1} * sd / sqrt(n).
-- One value: the interval is undefined (nan, nan), as in scipy.
function S.mean_ci(xs, opts)
  local o = options.check('mtt.stats.mean_ci', opts, 'alpha:number')
  numbers('mtt.stats.mean_ci', 'xs', xs, 1)
  local alpha = o.alpha or 0.05
  local m = S.mean(xs)
  if #xs < 2 then return m, nan, nan end
  local h = S.t_ppf(1 - alpha / 2, #xs - 1) * S.std(xs) / math.sqrt(#xs)
  return m, m - h, m + h
end

-- Correlation ----------------------------------------------------------------------------------

-- Pearson r and its two-sided p (t test with n - 2 df, equal to scipy's beta form). Constant
-- input gives nan, nan; n = 2 gives p = 1 (scipy).
function S.pearson(x, y)
  pair('mtt.stats.pearson', x, y)
  local n = #x
  local mx, my = S.mean(x), S.mean(y)
  local sxy, sxx, syy = 0, 0, 0
  for i = 1, n do
    local dx, dy = x[i] - mx, y[i] - my
    sxy = sxy + dx * dy; sxx = sxx + dx * dx; syy = syy + dy * dy
  end
  if sxx == 0 or syy == 0 then return nan, nan end
  local r = sxy / math.sqrt(sxx * syy)
  r = math.max(-1, math.min(1, r))
  if n == 2 then return r, 1 end
  if math.abs(r) == 1 then return r, 0 end
  local df = n - 2
  -- t^2 = r^2 df / (1 - r^2), so df / (df + t^2) = 1 - r^2: p = I_{1-r^2}(df/2, 1/2)
  return r, S.betainc(df / 2, 0.5, 1 - r * r, r * r)
end

-- Spearman rho (Pearson r of average ranks) and its two-sided p by the t approximation.
function S.spearman(x, y)
  pair('mtt.stats.spearman', x, y)
  local r = S.pearson(S.rank(x), S.rank(y))
  if r ~= r then return nan, nan end
  if math.abs(r) == 1 then return r, 0 end
  local df = #x - 2
  if df == 0 then return r, 1 end
  return r, S.betainc(df / 2, 0.5, 1 - r * r, r * r)
end

-- Least-squares line y = a + b x: a, b.
function S.linear_fit(x, y)
  pair('mtt.stats.linear_fit', x, y)
  local mx, my = S.mean(x), S.mean(y)
  local sxy, sxx = 0, 0
  for i = 1, #x do sxy = sxy + (x[i] - mx) * (y[i] - my); sxx = sxx + (x[i] - mx) ^ 2 end
  if sxx == 0 then return nan, nan end
  local b = sxy / sxx
  return my - b * mx, b
end

-- Bootstrap ---------------------------------------------------------------------------------

-- Percentile bootstrap interval of fn(sample) where each sample draws #data items of data with
-- replacement (items are anything: a task's numbers, a pair {x, y}). opts: n (1000 resamples),
-- seed (0; mtt.Generator, so the same on every machine), alpha (0.05). Resamples where fn is
-- not finite (e.g. a constant sample for a correlation) are left out and counted.
-- Returns lo, hi, {estimate = fn(data), n = resamples used, dropped = count}.
function S.bootstrap(fn, data, opts)
  local o = options.check('mtt.stats.bootstrap', opts, 'n:number seed:number alpha:number')
  if type(fn) ~= 'function' then U.raise('mtt.stats.bootstrap: fn must be a function, got ' .. type(fn)) end
  if type(data) ~= 'table' or #data < 1 then
    U.raise('mtt.stats.bootstrap: data must be a non-empty array, got ' .. (type(data) == 'table' and 'an empty table' or type(data)))
  end
  local nb, alpha = o.n or 1000, o.alpha or 0.05
  if not U.is_int(nb) or nb < 1 then U.raise('mtt.stats.bootstrap: n must be an integer >= 1, got ' .. tostring(nb)) end
  local creation, random = require 'mtt.creation', require 'mtt.random'
  local m = #data
  local idx = creation.randint(0, m, { nb, m }, { generator = random.Generator(o.seed or 0) })
  local p = ffi.cast('int32_t*', idx:data_ptr())
  local vals, sample = {}, {}
  for b = 0, nb - 1 do
    for i = 1, m do sample[i] = data[p[b * m + i - 1] + 1] end
    local v = fn(sample)
    if type(v) ~= 'number' then U.raise('mtt.stats.bootstrap: fn must return a number, got ' .. type(v)) end
    if is_finite(v) then vals[#vals + 1] = v end
  end
  local info = { estimate = fn(data), n = #vals, dropped = nb - #vals }
  if #vals == 0 then return nan, nan, info end
  return S.quantile(vals, alpha / 2), S.quantile(vals, 1 - alpha / 2), info
end

-- Changes between checkpoints ---------------------------------------------------------------------

local function keyed(fname, what, t)
  if type(t) ~= 'table' then U.raise(string.format('%s: %s must be a table key -> number, got %s', fname, what, type(t))) end
  for k, v in pairs(t) do
    if type(v) ~= 'number' then U.raise(string.format("%s: %s['%s'] must be a number, got %s", fname, what, tostring(k), type(v))) end
  end
end

local function sorted_keys(t, other)
  local ks = {}
  for k in pairs(t) do if other == nil or other[k] ~= nil then ks[#ks + 1] = k end end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

-- Per-key change b[k] - a[k] (e.g. task -> score at two checkpoints), over the keys both have.
-- Returns the table key -> change and the sorted array of those keys.
function S.delta(a, b)
  keyed('mtt.stats.delta', 'a', a); keyed('mtt.stats.delta', 'b', b)
  local d, ks = {}, sorted_keys(a, b)
  for _, k in ipairs(ks) do d[k] = b[k] - a[k] end
  return d, ks
end

-- Two key -> number tables as aligned arrays over their common keys: keys, xs, ys (so that
-- S.pearson(xs, ys) correlates, e.g., the change in ICL with the change in transfer by task).
function S.align(a, b)
  keyed('mtt.stats.align', 'a', a); keyed('mtt.stats.align', 'b', b)
  local ks, xs, ys = sorted_keys(a, b), {}, {}
  for i, k in ipairs(ks) do xs[i] = a[k]; ys[i] = b[k] end
  return ks, xs, ys
end

return S
