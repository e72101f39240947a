-- mtt.data.mixture: which task each training example comes from, with seqio's mixing rates.
--
--   local mix = mtt.data.mixture{tasks = tasks, rate = 'proportional', cap = 3000,
--                                temperature = mtt.data.mixture.schedule{{0, 1}, {1000, 8}}, seed = 1}
--   mix:rates(step)      -- {name = p}: the probabilities at that step (they sum to 1)
--   mix:sample(step)     -- a Task; mix:sample(step, slot) is a pure function of (seed, step, slot)
--   print(mix:describe(step))
--
-- Rates, as seqio's mixing_rate_num_examples: a task's base rate is
--   'proportional': min(n, cap) where n = #task.train (cap K: optional, the study's "examples-
--                   proportional mixing with a cap"); 'temperature' is the same base rate;
--   'uniform':      1 for every task;
--   {name = w}:     explicit weights (every selected task needs one, >= 0);
-- then rate^(1/T) for a temperature T (1 = no change; T -> infinity tends to uniform), then
-- normalized. T is a number, a function(step) -> T, or a piecewise-linear list of points
-- {{step, T}, ...} (constant before the first and after the last point): the study's "reverse
-- annealing" is T rising over training, e.g. {{0, 1}, {steps, 10}}.
--
-- Filters: include / exclude are lists of strings, each matching a task whose name or one of
-- whose categories equals it ('*' in a string is a wildcard on names). include keeps only the
-- matching tasks; exclude then drops the matching ones. Task names must be unique.
--
-- Sampling: draw (step, slot) takes the uniform number u = hash(seed, step, slot) (splitmix64, a
-- counter-based generator) and inverts the cumulative rates at that step, so what step s draws
-- does not depend on what was drawn before it in this process: a resumed run draws exactly what
-- an uninterrupted run would. mix:sample(step) without a slot numbers the draws of a step 1, 2,
-- ... (a cursor that :state() / :set_state() save).
local ffi = require 'ffi'
local bit = require 'bit'
local U = require 'mtt.util'
local options = require 'mtt.options'

local raise = U.raise

local M = {}
local Mixture = {}
Mixture.__index = Mixture

local STATE_FORMAT = 'mtt.mixture/1'

-- ---- counter-based uniform numbers ----

local function mix64(z)
  z = bit.bxor(z, bit.rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
  z = bit.bxor(z, bit.rshift(z, 27)) * 0x94D049BB133111EBULL
  return bit.bxor(z, bit.rshift(z, 31))
end

local GOLDEN = 0x9E3779B97F4A7C15ULL

-- A uniform double in [0, 1) from (a, b, c), integers >= 0: the top 53 bits of a splitmix64
-- chain.
function M.uniform(a, b, c)
  local z = mix64(ffi.cast('uint64_t', a) + GOLDEN)
  z = mix64(z + ffi.cast('uint64_t', b) * 0xD1B54A32D192ED03ULL + GOLDEN)
  z = mix64(z + ffi.cast('uint64_t', c or 0) * 0x8CB92BA72F3D8DD7ULL + GOLDEN)
  return tonumber(bit.rshift(z, 11)) / 2 ^ 53
end

-- A 32-bit integer hash of a string (FNV-1a), for seeding per-task streams by name.
function M.hash_string(s)
  local h = 2166136261ULL
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i))
    h = (h * 16777619ULL) % 0x100000000ULL
  end
  return tonumber(h)
end

-- ---- temperature schedules ----

-- schedule{{step, T}, ...}: piecewise linear in step, constant outside the points. Or
-- schedule{from = T0, to = T1, steps = N[, start = 0]}: a straight line from T0 at `start` to
-- T1 at start + N (reverse annealing when T1 > T0). Returns function(step) -> T.
function M.schedule(spec)
  if type(spec) ~= 'table' then raise('mixture.schedule: expected a list of {step, T} points or {from =, to =, steps =}') end
  local points
  if spec.from ~= nil or spec.to ~= nil or spec.steps ~= nil then
    local o = options.check('mixture.schedule', spec, 'from:number to:number steps:number start:number')
    if not (o.from and o.to and o.steps) then raise('mixture.schedule: give from, to and steps') end
    if o.steps <= 0 then raise('mixture.schedule: steps must be > 0, got ' .. o.steps) end
    local s0 = o.start or 0
    points = { { s0, o.from }, { s0 + o.steps, o.to } }
  else
    points = {}
    for i, p in ipairs(spec) do
      if type(p) ~= 'table' or type(p[1]) ~= 'number' or type(p[2]) ~= 'number' then
        raise(string.format('mixture.schedule: point %d must be {step, T} (numbers)', i))
      end
      if i > 1 and p[1] <= points[i - 1][1] then
        raise(string.format('mixture.schedule: the steps must increase (point %d: %g after %g)', i, p[1], points[i - 1][1]))
      end
      points[i] = { p[1], p[2] }
    end
    if #points == 0 then raise('mixture.schedule: no points') end
  end
  for i, p in ipairs(points) do
    if not (p[2] > 0) or p[2] == math.huge then
      raise(string.format('mixture.schedule: T must be a finite number > 0 (point %d: %s)', i, tostring(p[2])))
    end
  end
  return function(step)
    if step <= points[1][1] then return points[1][2] end
    for i = 2, #points do
      local a, b = points[i - 1], points[i]
      if step <= b[1] then return a[2] + (b[2] - a[2]) * (step - a[1]) / (b[1] - a[1]) end
    end
    return points[#points][2]
  end
end

-- ---- construction ----

local function matches(task, pat)
  if pat:find('*', 1, true) then
    local lua = '^' .. pat:gsub('[%^%$%(%)%%%.%[%]%+%-%?]', '%%%0'):gsub('%*', '.*') .. '$'
    return task.name:match(lua) ~= nil
  end
  if task.name == pat then return true end
  for _, c in ipairs(task.categories or {}) do
    if c == pat then return true end
  end
  return false
end

local function check_patterns(fname, key, list)
  if list == nil then return nil end
  if type(list) == 'string' then list = { list } end
  for i, p in ipairs(list) do
    if type(p) ~= 'string' then raise(string.format('%s: %s[%d] must be a task name or category (string)', fname, key, i)) end
  end
  return list
end

local function any_match(task, list)
  for _, p in ipairs(list) do
    if matches(task, p) then return true end
  end
  return false
end

-- The number of training examples of a task (task.train, else task.instances).
local function n_train(task)
  local list = task.train or task.instances
  return type(list) == 'table' and #list or 0
end
M.n_train = n_train

local SPEC = 'tasks:table rate:string|table cap:number temperature:number|function|table include:table|string '
  .. 'exclude:table|string seed:number'

function M.new(opts)
  local fname = 'mtt.data.mixture'
  if type(opts) ~= 'table' then raise(fname .. ': expected a table of options') end
  local o = options.check(fname, opts, SPEC)
  if o.tasks == nil then raise(fname .. ': give tasks (an array of tasks, e.g. from mtt.tasks.load)') end
  local seed = o.seed or 0
  if not U.is_int(seed) or seed < 0 then raise(fname .. ': seed must be an integer >= 0, got ' .. tostring(seed)) end
  local include = check_patterns(fname, 'include', o.include)
  local exclude = check_patterns(fname, 'exclude', o.exclude)

  local tasks, seen = {}, {}
  for i, t in ipairs(o.tasks) do
    if type(t) ~= 'table' or type(t.name) ~= 'string' then raise(string.format('%s: tasks[%d] is not a task (no name)', fname, i)) end
    if seen[t.name] then raise(string.format("%s: two tasks are named '%s' (tasks[%d] and [%d])", fname, t.name, seen[t.name], i)) end
    seen[t.name] = i
    if (not include or any_match(t, include)) and not (exclude and any_match(t, exclude)) then tasks[#tasks + 1] = t end
  end
  if #tasks == 0 then raise(string.format('%s: no task left (%d given, after include/exclude)', fname, #o.tasks)) end

  local rate = o.rate or 'proportional'
  local cap = o.cap
  if cap ~= nil and not (cap > 0) then raise(fname .. ': cap must be > 0, got ' .. tostring(cap)) end
  local base = {}
  if type(rate) == 'table' then
    if cap then raise(fname .. ': cap applies to proportional rates, not to explicit weights') end
    for name, w in pairs(rate) do
      if not seen[name] then raise(string.format("%s: rate names a task that is not given: '%s'", fname, tostring(name))) end
      if type(w) ~= 'number' or not (w >= 0) or w == math.huge then
        raise(string.format("%s: rate['%s'] must be a finite number >= 0, got %s", fname, name, tostring(w)))
      end
    end
    for i, t in ipairs(tasks) do
      base[i] = rate[t.name]
      if base[i] == nil then raise(string.format("%s: rate has no weight for task '%s'", fname, t.name)) end
    end
  elseif rate == 'proportional' or rate == 'temperature' then
    for i, t in ipairs(tasks) do
      local n = n_train(t)
      if n == 0 then raise(string.format("%s: task '%s' has no training instances", fname, t.name)) end
      base[i] = cap and math.min(n, cap) or n
    end
  elseif rate == 'uniform' then
    if cap then raise(fname .. ': cap applies to proportional rates, not to uniform') end
    for i = 1, #tasks do base[i] = 1 end
  else
    raise(string.format("%s: rate must be 'proportional', 'temperature', 'uniform' or a table name -> weight, got '%s'",
      fname, tostring(rate)))
  end

  local T = o.temperature
  if T == nil then T = 1 end
  local t_at
  if type(T) == 'number' then
    if not (T > 0) or T == math.huge then raise(fname .. ': temperature must be a finite number > 0, got ' .. T) end
    t_at = function() return T end
  elseif type(T) == 'function' then
    t_at = T
  else
    t_at = M.schedule(T)
  end

  local self = setmetatable({ tasks = tasks, base = base, seed = seed, rate_kind = type(rate) == 'table' and 'weights' or rate,
    cap = cap, temperature_at = t_at, cursor = { step = 0, slot = 0 }, _cache = {} }, Mixture)
  self.index = {}
  for i, t in ipairs(tasks) do self.index[t.name] = i end
  -- check the rates once now (a weights table of zeros, a schedule that returns nonsense)
  self:_cdf(1)
  return self
end

-- ---- rates ----

function Mixture:temperature(step)
  local T = self.temperature_at(step)
  if type(T) ~= 'number' or not (T > 0) or T == math.huge then
    raise(string.format('mixture: the temperature at step %s is %s (need a finite number > 0)', tostring(step), tostring(T)))
  end
  return T
end

-- {p_1..p_n} and the cumulative sums at step, cached by temperature.
function Mixture:_cdf(step)
  local T = self:temperature(step)
  local c = self._cache[T]
  if c then return c end
  local w, total = {}, 0
  for i, b in ipairs(self.base) do
    w[i] = T == 1 and b or b ^ (1 / T)
    total = total + w[i]
  end
  if not (total > 0) then raise('mixture: every rate is 0') end
  local p, cum, acc = {}, {}, 0
  for i = 1, #w do
    p[i] = w[i] / total
    acc = acc + p[i]
    cum[i] = acc
  end
  cum[#cum] = 1 -- no gap at the top from rounding
  c = { p = p, cum = cum, T = T }
  local n = 0
  for _ in pairs(self._cache) do n = n + 1 end
  if n > 256 then self._cache = {} end
  self._cache[T] = c
  return c
end

-- {name = probability} at step (default 1).
function Mixture:rates(step)
  local c, out = self:_cdf(step or 1), {}
  for i, t in ipairs(self.tasks) do out[t.name] = c.p[i] end
  return out
end

-- The index (into mix.tasks) drawn for (step, slot).
function Mixture:draw_index(step, slot)
  local cum = self:_cdf(step).cum
  local u = M.uniform(self.seed, step, slot)
  local lo, hi = 1, #cum
  while lo < hi do -- the first i with u < cum[i]
    local mid = math.floor((lo + hi) / 2)
    if u < cum[mid] then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- sample(step[, slot]) -> Task. Without a slot: the next slot of this step (1, 2, ...).
function Mixture:sample(step, slot)
  if not U.is_int(step) or step < 0 then raise('mixture:sample: step must be an integer >= 0, got ' .. tostring(step)) end
  if slot == nil then
    local cur = self.cursor
    if cur.step ~= step then cur.step, cur.slot = step, 0 end
    cur.slot = cur.slot + 1
    slot = cur.slot
  elseif not U.is_int(slot) or slot < 0 then
    raise('mixture:sample: slot must be an integer >= 0, got ' .. tostring(slot))
  end
  return self.tasks[self:draw_index(step, slot)]
end

-- ---- printing ----

-- A list of rows {name, n, base, p} (sorted by p, then name) that prints as a table.
function Mixture:describe(step)
  step = step or 1
  local c = self:_cdf(step)
  local rows = {}
  for i, t in ipairs(self.tasks) do rows[i] = { name = t.name, n = n_train(t), base = self.base[i], p = c.p[i] } end
  table.sort(rows, function(a, b)
    if a.p ~= b.p then return a.p > b.p end
    return a.name < b.name
  end)
  rows.step, rows.temperature, rows.rate, rows.cap = step, c.T, self.rate_kind, self.cap
  return setmetatable(rows, { __tostring = function(r)
    local w = 4
    for _, row in ipairs(r) do w = math.max(w, #row.name) end
    local lines = { string.format('mixture at step %d: %d tasks, rate %s%s, temperature %.4g', r.step, #r, r.rate,
      r.cap and (', cap ' .. r.cap) or '', r.temperature),
      string.format('  %-' .. w .. 's %8s %10s %9s', 'task', 'train', 'rate', 'p') }
    for _, row in ipairs(r) do
      lines[#lines + 1] = string.format('  %-' .. w .. 's %8d %10.4g %8.4f%%', row.name, row.n, row.base, 100 * row.p)
    end
    return table.concat(lines, '\n')
  end })
end

function Mixture:__tostring()
  return string.format('mtt.data.mixture(%d tasks, rate %s, seed %d)', #self.tasks, self.rate_kind, self.seed)
end

-- ---- resume ----

function Mixture:state()
  return { format = STATE_FORMAT, seed = self.seed, n_tasks = #self.tasks, step = self.cursor.step, slot = self.cursor.slot }
end

function Mixture:set_state(st)
  if type(st) ~= 'table' or st.format ~= STATE_FORMAT then raise('mixture:set_state: not a mixture state (from mixture:state())') end
  if st.seed ~= self.seed or st.n_tasks ~= #self.tasks then
    raise(string.format('mixture:set_state: the state is from another mixture (seed %s, %s tasks; here seed %d, %d tasks)',
      tostring(st.seed), tostring(st.n_tasks), self.seed, #self.tasks))
  end
  self.cursor = { step = st.step, slot = st.slot }
  return self
end

return setmetatable(M, { __call = function(_, opts) return M.new(opts) end })
