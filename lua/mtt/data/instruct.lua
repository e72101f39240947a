-- mtt.data.instruct: instruction-tuning batches from a task mixture, with optional replay of
-- pre-training text. The data source mtt.train reads when it tunes on tasks.
--
--   local data = mtt.data.instruct{mixture = mix, tokenizer = tok, block_size = 128, format = 'tk',
--                                  k = 0, replay = {corpus = corpus, ratio = 0.25, by = 'tokens'}}
--   local idx, targets, info = data:batch('train', 16)  -- i32 [B, T]; targets -100 where no loss
--
-- Examples: the mixture picks a task, the task's stream gives its next training instance
-- (task.train, visited in a fresh seeded permutation per epoch, so no instance repeats within an
-- epoch), mtt.tasks.encode makes prompt .. target .. eot ids (truncated to block_size + 1 ids), and
-- the loss covers the target and the eot only. The 'val' split is the held-out instances
-- (task.test) of the same tasks, interleaved task by task (the first rows cover every task).
--
-- Batching (pack = false, the default): padding with loss masks and length bucketing. A pool of
-- `bucket` batches of examples is drawn, sorted by length and cut into batches, and the batches
-- are served in a seeded shuffled order, so a batch's length T (its longest example, rounded up
-- to a multiple of pad_multiple, default 1) wastes few padded positions. (Rounding to 8 cost
-- 27% of the speed on short prompts on the CPU, bench_batching.lua; a GPU may want 8.) Padding goes after the
-- example and the attention is causal, so no real token ever sees a pad: a padded row computes
-- exactly what the example alone would. The mixture's temperature is read once per pool (at the
-- step the pool is drawn), so a schedule moves in steps of `bucket` batches.
-- pack = true: examples are placed whole, first fit, into rows of exactly block_size tokens.
-- The fused causal attention has no mask, so a packed example ATTENDS TO THE EXAMPLES BEFORE
-- IT IN ITS ROW (and starts at a later position): cheaper rows, not the same computation.
-- tools/bench/bench_batching.lua measures the two (lua/mtt/README.md has the numbers).
--
-- Replay: replay = {corpus = mtt.data.corpus, ratio = r, by = 'examples' | 'tokens'}. A fraction
-- r of each batch's rows (exactly r over every `bucket` batches) are blocks of the corpus' train
-- stream ('val': its val stream), cut to the batch's length, with loss on every token. With by =
-- 'tokens' the replay rows are trimmed so that replay tokens are r of the batch's real (non-pad)
-- tokens, a remainder carried to the next batch. Replay rows are named 'replay' in info, so
-- mtt.train logs their loss apart.
--
-- info = {rows = {{task = name, segments = {{task =, start =, len =, instance =}}}}, B =, T =,
-- n_tokens = (real, non-pad positions), n_target = (positions with loss), n_pad =}. start is
-- 0-based; instance indexes task.train (task.test in 'val' batches).
--
-- Resume: :state() is a plain table (pool number, batches served from it, the stream cursors and
-- mixture cursor at the pool's start, the replay corpus state); :set_state() redraws the pool
-- from that snapshot, so the batches that follow are exactly those an uninterrupted run gets.
-- Hooks mtt.train calls when present: set_step(step) (the mixture's step), begin_eval() (the
-- val stream restarts, so every evaluation scores the same examples), loss_by_task().
local ffi = require 'ffi'
local U = require 'mtt.util'
local options = require 'mtt.options'
local creation = require 'mtt.creation'
local autograd = require 'mtt.autograd'
local tensor = require 'mtt.tensor'
local mixture = require 'mtt.data.mixture'

local T_ = tensor.methods
local raise = U.raise

local M = {}
local Instruct = {}
Instruct.__index = Instruct

local STATE_FORMAT = 'mtt.instruct/1'
local IGNORE = -100

local function i32ptr(t) return ffi.cast('int32_t *', t:data_ptr()) end

local SPEC = 'mixture:table tokenizer:table|cdata|userdata block_size:number format:string k:number replay:table '
  .. 'pack:boolean seed:number bucket:number encode:function pad_id:number pad_multiple:number'

function M.new(opts)
  local fname = 'mtt.data.instruct'
  if type(opts) ~= 'table' then raise(fname .. ': expected a table of options') end
  local o = options.check(fname, opts, SPEC)
  if type(o.mixture) ~= 'table' or type(o.mixture.sample) ~= 'function' then
    raise(fname .. ': give mixture = mtt.data.mixture{...}')
  end
  if o.tokenizer == nil then raise(fname .. ': give tokenizer') end
  local Tmax = o.block_size
  if not U.is_int(Tmax) or Tmax < 2 then raise(fname .. ': block_size must be an integer >= 2, got ' .. tostring(Tmax)) end
  local seed = o.seed or 0
  if not U.is_int(seed) or seed < 0 then raise(fname .. ': seed must be an integer >= 0') end
  local bucket = o.bucket or 8
  if not U.is_int(bucket) or bucket < 1 then raise(fname .. ': bucket must be an integer >= 1 (batches per pool)') end
  local multiple = o.pad_multiple or 1
  if not U.is_int(multiple) or multiple < 1 then raise(fname .. ': pad_multiple must be an integer >= 1') end
  local k = o.k or 0
  if not U.is_int(k) or k < 0 then raise(fname .. ': k must be an integer >= 0') end
  local pad = o.pad_id or o.tokenizer.eot_id
  if not U.is_int(pad) then raise(fname .. ': the tokenizer has no eot_id; give pad_id') end
  local encode = o.encode
  if not encode then
    local ok, tasks = pcall(require, 'mtt.tasks')
    if not ok or type(tasks.encode) ~= 'function' then raise(fname .. ': mtt.tasks.encode is not available; give encode = fn') end
    encode = tasks.encode
  end
  local replay
  if o.replay then
    local r = options.check(fname .. ' replay', o.replay, 'corpus:table ratio:number by:string')
    if type(r.corpus) ~= 'table' or type(r.corpus.batch) ~= 'function' then
      raise(fname .. ': replay.corpus must be a corpus (mtt.data.corpus{...})')
    end
    local ratio = r.ratio or 0.25
    if not (ratio >= 0 and ratio < 1) then raise(fname .. ': replay.ratio must be in [0, 1), got ' .. tostring(ratio)) end
    local by = r.by or 'examples'
    if by ~= 'examples' and by ~= 'tokens' then
      raise(fname .. ": replay.by must be 'examples' or 'tokens', got '" .. tostring(by) .. "'")
    end
    replay = { corpus = r.corpus, ratio = ratio, by = by }
  end

  local self = setmetatable({
    mixture = o.mixture, tokenizer = o.tokenizer, block_size = Tmax, format = o.format or 'tk', k = k,
    pack = o.pack == true, seed = seed, bucket = bucket, pad_multiple = multiple, encode = encode, pad_id = pad, replay = replay,
    tasks = o.mixture.tasks, cache = {}, val_cache = {},
  }, Instruct)
  self.index = {}
  for i, t in ipairs(self.tasks) do
    if type(t.train) ~= 'table' then raise(string.format("%s: task '%s' has no train split", fname, t.name)) end
    self.index[t.name] = i
  end
  self:_reset()
  -- the val stream: held-out instances of every task, one task after another in turn
  local val, r = {}, 1
  while true do
    local any = false
    for i, t in ipairs(self.tasks) do
      if t.test and t.test[r] then
        val[#val + 1] = { i, r }
        any = true
      end
    end
    if not any then break end
    r = r + 1
  end
  self.val_order = val
  return self
end

function Instruct:_reset()
  self.streams = {}
  for i = 1, #self.tasks do self.streams[i] = { epoch = 0, pos = 0 } end
  self.perm = {}
  self.n_pools, self.served, self.pool = 0, 0, nil
  self.step, self.external_step = 1, false
  self.carry = 0 -- replay tokens owed (by = 'tokens')
  self.val_pos = 0
end

-- ---- examples ----

-- A seeded permutation (1-based list) of 1..n for (task, epoch): splitmix64 Fisher-Yates.
local function permutation(n, seed, name_hash, epoch)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    local j = 1 + math.floor(mixture.uniform(seed * 4096 + 17, name_hash, epoch * 1048576 + i) * i)
    p[i], p[j] = p[j], p[i]
  end
  return p
end

function Instruct:_example(i, split, j)
  local cache = split == 'train' and self.cache or self.val_cache
  local key = i * 1048576 + j
  local ex = cache[key]
  if ex then return ex end
  local task = self.tasks[i]
  local inst = split == 'train' and task.train[j] or task.test[j]
  local e = self.encode(self.tokenizer, task, inst, { format = self.format, k = self.k, seed = self.seed,
    max_len = self.block_size + 1 })
  local ids, ts = e.ids, e.target_start
  if type(ids) ~= 'table' or not U.is_int(ts) or ts < 2 or ts > #ids or #ids > self.block_size + 1 then
    raise(string.format("instruct: encode gave a bad example for task '%s' instance %d (%d ids, target_start %s, " ..
      'max %d ids)', task.name, j, type(ids) == 'table' and #ids or -1, tostring(ts), self.block_size + 1))
  end
  ex = { ids = ids, ts = ts, task = task.name, len = #ids - 1, instance = j }
  cache[key] = ex
  return ex
end

-- The next training instance of task i (its stream cursor advances).
function Instruct:_next(i)
  local task, cur = self.tasks[i], self.streams[i]
  local n = #task.train
  if cur.pos >= n then cur.epoch, cur.pos = cur.epoch + 1, 0 end
  local pc = self.perm[i]
  if not pc or pc.epoch ~= cur.epoch then
    pc = { epoch = cur.epoch, p = permutation(n, self.seed, mixture.hash_string(task.name), cur.epoch) }
    self.perm[i] = pc
  end
  cur.pos = cur.pos + 1
  return self:_example(i, 'train', pc.p[cur.pos])
end

function Instruct:_draw(step)
  local t = self.mixture:sample(step)
  local i = self.index[t.name]
  if not i then raise("instruct: the mixture drew '" .. tostring(t.name) .. "', which is not one of its tasks") end
  return self:_next(i)
end

-- ---- replay rows per batch ----

-- Replay rows of train batch number b (0-based) out of B: the pure function floor(r B (b+1)) -
-- floor(r B b), so the rows over any run of batches are r of them to within one row.
function Instruct:_n_replay(b, B)
  if not self.replay or self.replay.ratio == 0 then return 0 end
  local x = self.replay.ratio * B
  return math.floor(x * (b + 1) + 1e-9) - math.floor(x * b + 1e-9)
end

-- ---- pools ----

local function round_up(n, m, cap) return math.min(cap, math.max(m, math.ceil(n / m) * m)) end

-- Draws pool number n_pools: a list of batches, each a list of examples (padding) or of rows,
-- each a list of examples (packing).
function Instruct:_make_pool(B)
  local first = self.n_pools * self.bucket
  local step = self.external_step and self.step or first + 1
  self.origin = { step = step, B = B, mix = self.mixture:state(), streams = {} }
  for i, c in ipairs(self.streams) do self.origin.streams[i] = { c.epoch, c.pos } end
  local sizes = {}
  for j = 1, self.bucket do sizes[j] = B - self:_n_replay(first + j - 1, B) end
  local batches = {}
  if not self.pack then
    local pool, n = {}, 0
    for _, s in ipairs(sizes) do n = n + s end
    for j = 1, n do pool[j] = { ex = self:_draw(step), j = j } end
    table.sort(pool, function(a, b)
      if a.ex.len ~= b.ex.len then return a.ex.len < b.ex.len end
      return a.j < b.j
    end)
    local at = 0
    for j, s in ipairs(sizes) do
      local list = {}
      for r = 1, s do list[r] = pool[at + r].ex end
      at = at + s
      batches[j] = list
    end
    -- the sorted batches in a seeded order, so that lengths do not rise within each pool
    local order = permutation(#batches, self.seed + 1, 7, self.n_pools)
    local shuffled = {}
    for j = 1, #batches do shuffled[j] = batches[order[j]] end
    batches = shuffled
  else
    local Tmax = self.block_size
    local rows, free, n_rows = {}, {}, 0
    for _, s in ipairs(sizes) do n_rows = n_rows + s end
    while true do
      local ex = self:_draw(step)
      local placed = false
      for r = 1, #rows do
        if free[r] >= ex.len then
          local row = rows[r]
          row[#row + 1] = ex
          free[r] = free[r] - ex.len
          placed = true
          break
        end
      end
      if not placed then
        if #rows == n_rows then break end -- the example that would open one row too many is dropped
        rows[#rows + 1], free[#rows + 1] = { ex }, Tmax - ex.len
      end
    end
    local at = 0
    for j, s in ipairs(sizes) do
      local list = {}
      for r = 1, s do list[r] = rows[at + r] end
      at = at + s
      batches[j] = list
    end
  end
  self.pool = { B = B, batches = batches }
  self.n_pools = self.n_pools + 1
  self.served = 0
end

-- ---- filling tensors ----

-- Writes example ex at position `start` of row r: idx = ids[1..len], targets = ids[2..len+1]
-- where that target is part of the answer, else IGNORE. Returns the number of loss positions.
local function put_example(ip, tp, T, r, start, ex)
  local ids, ts = ex.ids, ex.ts
  local base = r * T + start
  local n = 0
  for t = 0, ex.len - 1 do
    ip[base + t] = ids[t + 1]
    if t + 2 >= ts then
      tp[base + t] = ids[t + 2]
      n = n + 1
    end
  end
  return n
end

-- n rows of replay text (corpus blocks of split) at rows r0.., each cut to lens[i] tokens.
local function put_replay(self, split, ip, tp, T, r0, lens)
  local n = #lens
  if n == 0 then return 0 end
  local cidx, ctg = self.replay.corpus:batch(split, n)
  local Tc = tonumber(cidx.dims[1])
  local cp, cq = i32ptr(cidx), i32ptr(ctg)
  local total = 0
  for i = 1, n do
    local L = math.min(lens[i], Tc, T)
    local base, src = (r0 + i - 1) * T, (i - 1) * Tc
    for t = 0, L - 1 do
      ip[base + t] = cp[src + t]
      tp[base + t] = cq[src + t]
    end
    total = total + L
  end
  return total
end

-- A batch from a list of instruct rows (each a list of examples) and n_r replay rows.
function Instruct:_assemble(split, rows, n_r, B)
  local T = 1
  if self.pack then
    T = self.block_size
  else
    for _, row in ipairs(rows) do
      local len = 0
      for _, ex in ipairs(row) do len = len + ex.len end
      T = math.max(T, len)
    end
    if #rows == 0 then T = self.block_size end -- a batch of replay rows only: whole blocks
    T = round_up(T, self.pad_multiple, self.block_size)
  end
  local idx = creation.full({ B, T }, self.pad_id, { dtype = 'i32' })
  local targets = creation.full({ B, T }, IGNORE, { dtype = 'i32' })
  local ip, tp = i32ptr(idx), i32ptr(targets)
  local info = { rows = {}, B = B, T = T, n_tokens = 0, n_target = 0 }
  for r, row in ipairs(rows) do
    local start, segs = 0, {}
    for _, ex in ipairs(row) do
      info.n_target = info.n_target + put_example(ip, tp, T, r - 1, start, ex)
      segs[#segs + 1] = { task = ex.task, start = start, len = ex.len, instance = ex.instance }
      start = start + ex.len
    end
    info.n_tokens = info.n_tokens + start
    info.rows[r] = { task = row[1] and row[1].task, segments = segs }
  end
  if n_r > 0 then
    local lens = {}
    if self.replay.by == 'tokens' then
      local r = self.replay.ratio
      local want = r / (1 - r) * info.n_tokens + (split == 'train' and self.carry or 0)
      local left = want
      for i = 1, n_r do
        lens[i] = math.max(0, math.min(T, math.floor(left / (n_r - i + 1) + 0.5)))
        left = left - lens[i]
      end
      if split == 'train' then self.carry = left end
    else
      for i = 1, n_r do lens[i] = T end
    end
    local got = put_replay(self, split, ip, tp, T, #rows, lens)
    if split == 'train' and self.replay.by == 'tokens' then
      local placed = 0
      for i = 1, n_r do placed = placed + lens[i] end
      self.carry = self.carry + placed - got -- what a short corpus block could not give
    end
    for i = 1, n_r do
      local L = math.min(lens[i], T)
      info.rows[#rows + i] = { task = 'replay', segments = { { task = 'replay', start = 0, len = L } } }
    end
    info.n_tokens, info.n_target = info.n_tokens + got, info.n_target + got
  end
  info.n_pad = B * T - info.n_tokens
  return idx, targets, info
end

-- ---- batches ----

function Instruct:batch(split, B)
  if split ~= 'train' and split ~= 'val' then raise("instruct:batch: split must be 'train' or 'val', got " .. tostring(split)) end
  if not U.is_int(B) or B < 1 then raise('instruct:batch: batch size must be an integer >= 1, got ' .. tostring(B)) end
  if split == 'val' then return self:_val_batch(B) end
  if not self.pool or self.pool.B ~= B or self.served >= #self.pool.batches then self:_make_pool(B) end
  self.served = self.served + 1
  local list = self.pool.batches[self.served]
  local rows = {}
  if self.pack then rows = list else for r, ex in ipairs(list) do rows[r] = { ex } end end
  return self:_assemble('train', rows, B - #list, B)
end

function Instruct:_val_batch(B)
  local n = #self.val_order
  if n == 0 then raise("instruct:batch: the 'val' split is empty (no task has test instances)") end
  local n_r = 0
  if self.replay and self.replay.ratio > 0 then n_r = math.floor(self.replay.ratio * B + 0.5) end
  if n_r >= B then n_r = B - 1 end
  local rows = {}
  for r = 1, B - n_r do
    if self.val_pos >= n then self.val_pos = 0 end
    self.val_pos = self.val_pos + 1
    local v = self.val_order[self.val_pos]
    rows[r] = { self:_example(v[1], 'val', v[2]) }
  end
  return self:_assemble('val', rows, n_r, B)
end

-- for idx, targets, info in data:iter_val(B[, max_rows]): the val stream once from its start
-- (the first max_rows rows: held-out instances task by task in turn), without replay rows, the
-- last batch smaller; the val cursor is left alone. For full per-task evaluations.
function Instruct:iter_val(B, max_rows)
  if not U.is_int(B) or B < 1 then raise('instruct:iter_val: batch size must be an integer >= 1') end
  local n = math.min(#self.val_order, max_rows or math.huge)
  local at = 0
  return function()
    if at >= n then return nil end
    local rows = {}
    for r = 1, math.min(B, n - at) do
      local v = self.val_order[at + r]
      rows[r] = { self:_example(v[1], 'val', v[2]) }
    end
    at = at + #rows
    return self:_assemble('val', rows, 0, #rows)
  end
end

-- The val stream (and the replay corpus' val stream) from the start: each evaluation of a run
-- scores the same examples.
function Instruct:begin_eval()
  self.val_pos = 0
  if self.replay and self.replay.corpus.reset then self.replay.corpus:reset('val') end
end

-- The mixture step the next pools draw at (mtt.train calls it at the start of each step).
function Instruct:set_step(step)
  self.step, self.external_step = step, true
end

function Instruct:num_examples(split)
  if split == 'val' then return #self.val_order end
  local n = 0
  for _, t in ipairs(self.tasks) do n = n + #t.train end
  return n
end

-- ---- per-task loss ----

-- {name = {sum =, count =}}: the summed negative log-likelihood of the loss positions of each
-- task (replay rows: 'replay'), from logits [B, T, V] of a forward that already ran.
function Instruct.loss_by_task(_, logits, targets, info)
  local B, T = tonumber(targets.dims[0]), tonumber(targets.dims[1])
  local V = tonumber(logits.dims[2])
  local out = {}
  autograd.no_grad(function()
    -- only the positions that count (targets are mostly prompt: log_softmax over every
    -- position cost ~10% of a training step; over these rows a fraction of that)
    local tp = i32ptr(targets:contiguous())
    local pos = {}
    for i = 0, B * T - 1 do if tp[i] ~= IGNORE then pos[#pos + 1] = i end end
    if #pos == 0 then return end
    local rows = creation.empty(#pos, { dtype = 'i32' })
    local want = creation.empty(#pos, 1, { dtype = 'i32' })
    local rp, wp = i32ptr(rows), i32ptr(want)
    local slot = {} -- flat position -> index into the selected rows
    for j, i in ipairs(pos) do
      rp[j - 1], wp[j - 1], slot[i] = i, tp[i], j - 1
    end
    local flat = T_.reshape(T_.detach(logits), B * T, V)
    if flat.device and flat.device ~= 'cpu' then rows, want = T_.to(rows, flat.device), T_.to(want, flat.device) end
    local lp = T_.contiguous(T_.gather(T_.log_softmax(T_.index_select(flat, 1, rows), -1), 2, want))
    if lp.dtype ~= 'f32' then lp = T_.to(lp, 'f32') end
    if lp.device and lp.device ~= 'cpu' then lp = T_.to(lp, 'cpu') end
    local p = ffi.cast('float *', lp:data_ptr())
    for r, row in ipairs(info.rows) do
      for _, seg in ipairs(row.segments) do
        local acc = out[seg.task]
        if not acc then acc = { sum = 0, count = 0 }; out[seg.task] = acc end
        local base = (r - 1) * T + seg.start
        for t = base, base + seg.len - 1 do
          local j = slot[t]
          if j then
            acc.sum = acc.sum - p[j]
            acc.count = acc.count + 1
          end
        end
      end
    end
  end)
  return out
end

-- ---- resume ----

function Instruct:state()
  local st = { format = STATE_FORMAT, seed = self.seed, n_tasks = #self.tasks, n_pools = self.n_pools,
    served = self.served, step = self.step, external_step = self.external_step, carry = self.carry,
    val_pos = self.val_pos, origin = self.pool and self.origin or nil, streams = {}, mix = self.mixture:state() }
  for i, c in ipairs(self.streams) do st.streams[i] = { c.epoch, c.pos } end
  if self.replay then st.replay = self.replay.corpus:state() end
  return st
end

function Instruct:set_state(st)
  local fname = 'instruct:set_state'
  if type(st) ~= 'table' or st.format ~= STATE_FORMAT then raise(fname .. ': not an instruct state (from :state())') end
  if st.seed ~= self.seed or st.n_tasks ~= #self.tasks then
    raise(string.format('%s: the state is from another set-up (seed %s, %s tasks; here seed %d, %d tasks)', fname,
      tostring(st.seed), tostring(st.n_tasks), self.seed, #self.tasks))
  end
  if (st.replay ~= nil) ~= (self.replay ~= nil) then raise(fname .. ': the state and this data differ in replay') end
  self:_reset()
  if st.origin then
    -- redraw the pool being served, from the cursors at its start
    local o = st.origin
    for i, c in ipairs(o.streams) do self.streams[i] = { epoch = c[1], pos = c[2] } end
    self.mixture:set_state(o.mix)
    self.n_pools = st.n_pools - 1
    self.step, self.external_step = o.step, st.external_step
    self:_make_pool(o.B)
  end
  for i, c in ipairs(st.streams) do self.streams[i] = { epoch = c[1], pos = c[2] } end
  self.mixture:set_state(st.mix)
  self.n_pools, self.served = st.n_pools, st.served
  self.step, self.external_step, self.carry, self.val_pos = st.step, st.external_step, st.carry, st.val_pos
  if self.replay then self.replay.corpus:set_state(st.replay) end
  return self
end

function Instruct:__tostring()
  return string.format('mtt.data.instruct(%d tasks, %d train / %d val examples, block %d, %s%s)', #self.tasks,
    self:num_examples('train'), self:num_examples('val'), self.block_size, self.pack and 'packed' or 'padded',
    self.replay and string.format(', replay %g by %s', self.replay.ratio, self.replay.by) or '')
end

return setmetatable(M, { __call = function(_, opts) return M.new(opts) end })
