-- mtt.eval.transfer: fine-tuning transfer to held-out tasks, from any checkpoint.
--
--   local rows = mtt.eval.transfer{model = gpt, tokenizer = tok, tasks = heldout, n = {5, 10},
--     steps = 20, lr = 1e-3, batch_size = 4, format = 'id', seed = 1, max_instances = 40}
--
-- For each task, each n, each seed: a copy of the model is fine-tuned on n examples of
-- task.train (drawn by mtt.eval.rng seeded by (seed, task name, n)) for `steps` steps of
-- batch_size examples (cycling through the n in epochs, reshuffled each epoch by the same
-- generator), AdamW with a constant lr, betas (0.9, 0.999), weight_decay 0 by default, global
-- gradient-norm clipping at `clip` (1.0; false: none), the loss on the target tokens only
-- (output + end of text), without dropout (eval mode: the run depends on its seed only). Then
-- task.test (first max_instances) is scored as mtt.eval.icl scores it: loss, acc/acc_norm for
-- option tasks, exact_match and rouge_l by greedy generation. n = 0 scores the model as it is.
-- Encodings: 'id' (the study's unique-task-id format, k = 0) or 'exemplars' (in-context
-- exemplar format: each training example and each test prompt carries k demonstrations, default
-- 2, drawn from the n fine-tuning examples).
--
-- Memory and speed: one scratch model (same class and config) and one AdamW are made per call
-- (or passed in as `scratch`, to share them between calls); before each fine-tune the scratch
-- parameters are copy_()'d from the original and the optimizer moments zeroed: no disk, no new
-- parameter tensors. The original model is only read: its tensors are bitwise unchanged
-- (test_eval_transfer.lua compares every byte). Every run is seeded from its own key, so the
-- rows do not depend on the order of the tasks.
--
-- Returns rows {task =, n =, seed =, metric =, value =, count = test instances, train_loss =
-- last step's loss}, then per (n, seed, metric) the mean over tasks: {task = '*', ...,
-- count = tasks}.
--
--   mtt.eval.transfer_gap(rows_tuned, rows_base) -> rows {task, n, seed, metric, tuned, base,
--     gap = tuned - base} for every (task, n, seed, metric) in both, then task = '*' rows with
--     the mean over tasks. (For loss a negative gap is the better one.)
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local creation = require 'mtt.creation'
local autograd = require 'mtt.autograd'
local optim = require 'mtt.optim'
local rng = require 'mtt.eval.rng'
local icl = require 'mtt.eval.icl'
local score = require 'mtt.eval.score'

local T = tensor.methods
local raise = U.raise

local M = {}

-- {scratch = model, opt = AdamW, pairs = {{scratch param, original param}}} for `model`.
function M.new_scratch(model, opts)
  local fname = 'mtt.eval.transfer'
  local cls = getmetatable(model)
  if not (cls and cls.new and model.config) then
    raise(fname .. ': the model must be an mtt.nn model with a config (or pass scratch =)')
  end
  local scratch = cls.new(model.config, { init = false })
  local device = model:parameters()[1].device
  if device ~= 'cpu' then scratch:to(device) end
  local mine = {}
  for _, np in ipairs(scratch:named_parameters()) do mine[np[1]] = np[2] end
  local list = {}
  for _, np in ipairs(model:named_parameters()) do
    local p = mine[np[1]]
    if not p or U.tshape(p) ~= U.tshape(np[2]) or p.dtype ~= np[2].dtype then
      raise(string.format("%s: scratch model has no parameter '%s' like the model's", fname, np[1]))
    end
    list[#list + 1] = { p, np[2] }
  end
  local params = {}
  for i, pr in ipairs(list) do params[i] = pr[1] end
  local opt = optim.AdamW(params, { lr = 1e-3, weight_decay = 0 })
  return { model = scratch, opt = opt, pairs = list, params = params }
end

-- Scratch := original; optimizer as new.
local function reset(s)
  autograd.no_grad(function()
    for _, pr in ipairs(s.pairs) do T.copy_(pr[1], pr[2]) end
    for _, st in pairs(s.opt.state) do
      for _, t in pairs(st) do T.zero_(t) end
    end
  end)
  s.opt.step_count = 0
  s.model:zero_grad()
end

-- One padded batch of encoded examples -> idx, targets (-100 outside the targets).
local function make_batch(encs)
  local L = 0
  for _, e in ipairs(encs) do L = math.max(L, #e.ids - 1) end
  local idx, tgt = {}, {}
  for b, e in ipairs(encs) do
    local row, trow = {}, {}
    for t = 1, L do
      row[t] = e.ids[t] or 0
      local p = t + 1
      trow[t] = (p >= e.target_start and p <= #e.ids) and e.ids[p] or -100
    end
    idx[b], tgt[b] = row, trow
  end
  return creation.tensor(idx, { dtype = 'i32' }), creation.tensor(tgt, { dtype = 'i32' })
end

local function finetune(s, task, train, cfg, r)
  local tasks = require 'mtt.tasks'
  local model, opt = s.model, s.opt
  local npos = score.max_positions(model)
  local encs = {}
  for i, inst in ipairs(train) do
    local demos = {}
    if cfg.k > 0 then
      demos = r:sample(train, cfg.k, function(d) return d == inst end)
    end
    encs[i] = tasks.encode(cfg.tokenizer, task, inst, { format = cfg.format, k = #demos,
      demos = #demos > 0 and demos or nil, seed = cfg.seed, max_len = npos })
  end
  opt.lr = cfg.lr
  model:eval() -- no dropout: a run depends on its seed only
  local order, at, last = r:permutation(#encs), 0, nil
  for _ = 1, cfg.steps do
    local batch = {}
    for b = 1, math.min(cfg.batch_size, #encs) do
      at = at + 1
      if at > #order then order, at = r:permutation(#encs), 1 end
      batch[b] = encs[order[at]]
    end
    local idx, tgt = make_batch(batch)
    local _, loss = model(idx, tgt, { ignore_index = -100 })
    loss:backward()
    if cfg.clip then optim.utils.clip_grad_norm_(s.params, cfg.clip) end
    opt:step()
    opt:zero_grad()
    last = T.item(loss)
  end
  return last
end

local SPEC = 'model:table tokenizer:table|cdata|userdata tasks:table|string n:number|table steps:number lr:number ' ..
  'batch_size:number format:string k:number seed:number|table max_instances:number scores:table ' ..
  'max_new_tokens:number stop:table clip:number|boolean weight_decay:number scratch:table samples:string ' ..
  'progress:boolean|function'

function M.transfer(opts)
  local fname = 'mtt.eval.transfer'
  local o, tasks = icl.check_opts(fname, opts, SPEC)
  local ns = icl.list_of(o.n or { 5, 10 }, 'n', fname)
  local seeds = icl.list_of(o.seed or 0, 'seed', fname)
  local format = o.format or 'id'
  if format ~= 'id' and format ~= 'exemplars' then
    raise(string.format("%s: format must be 'id' or 'exemplars', got '%s'", fname, tostring(format)))
  end
  local k = o.k or (format == 'exemplars' and 2 or 0)
  local steps, lr, B = o.steps or 20, o.lr or 1e-3, o.batch_size or 4
  for what, v in pairs({ steps = steps, batch_size = B, k = k }) do
    if not U.is_int(v) or v < (what == 'batch_size' and 1 or 0) then
      raise(string.format('%s: %s must be an integer >= %d, got %s', fname, what, what == 'batch_size' and 1 or 0, tostring(v)))
    end
  end
  if lr <= 0 then raise(fname .. ': lr must be > 0, got ' .. tostring(lr)) end
  local clip = o.clip == nil and 1.0 or o.clip
  if clip == true then clip = 1.0 end
  local s = o.scratch or M.new_scratch(o.model)
  s.opt.weight_decay = o.weight_decay or 0
  local writer = icl.sample_writer(o.samples, fname)
  local cfg = { model = s.model, tokenizer = o.tokenizer, format = format, k = k, max_instances = o.max_instances,
    scores = icl.resolve_scores(o.scores, fname), max_new_tokens = o.max_new_tokens or 32, stop = o.stop or { '\n' },
    batch_size = 16, sample = writer and writer.write, steps = steps, lr = lr, clip = clip }
  local rows = {}
  icl.each_run(tasks, ns, seeds, writer, function(ti, task, n, seed)
    cfg.seed = seed
    local r = rng.new(seed, task.name, 'transfer', n)
    local train = r:sample(task.train, n)
    reset(s)
    local train_loss
    if #train > 0 and steps > 0 then train_loss = finetune(s, task, train, cfg, r) end
    -- test prompts draw their demonstrations from the fine-tuning examples
    cfg.demo_pool, cfg.demo_key = train, 'transfer:' .. n
    cfg.k = math.min(k, #train)
    cfg.extra = { n = n, kind = 'transfer' }
    local vals, count = icl.evaluate_task(task, cfg)
    cfg.k = k
    for _, m in ipairs(icl.METRICS) do
      if vals[m] then
        rows[#rows + 1] = { task = task.name, n = n, seed = seed, metric = m, value = vals[m], count = count,
          train_loss = train_loss }
      end
    end
    icl.progress(o.progress, { task = task.name, index = ti, tasks = #tasks, n = n, seed = seed, values = vals,
      train_loss = train_loss }, string.format('transfer %d/%d %s n=%d seed=%d', ti, #tasks, task.name, n, seed))
  end)
  return icl.append_means(rows, { 'n', 'seed', 'metric' }, 'count')
end

function M.transfer_gap(tuned, base)
  local fname = 'mtt.eval.transfer_gap'
  if type(tuned) ~= 'table' or type(base) ~= 'table' then raise(fname .. ': expected two lists of rows') end
  local function key(r) return string.format('%s|%s|%s|%s', r.task, tostring(r.n), tostring(r.seed), r.metric) end
  local b = {}
  for _, r in ipairs(base) do if r.task ~= '*' then b[key(r)] = r end end
  local rows = {}
  for _, r in ipairs(tuned) do
    local rb = r.task ~= '*' and b[key(r)]
    if rb then
      rows[#rows + 1] = { task = r.task, n = r.n, seed = r.seed, metric = r.metric, tuned = r.value, base = rb.value,
        gap = r.value - rb.value, value = r.value - rb.value }
    end
  end
  local means, groups, order = icl.mean_rows(rows, { 'n', 'seed', 'metric' })
  for i, m in ipairs(means) do
    local g, st, sb = groups[order[i]], 0, 0
    for _, r in ipairs(rows) do
      if r.n == m.n and r.seed == m.seed and r.metric == m.metric then st, sb = st + r.tuned, sb + r.base end
    end
    m.tuned, m.base, m.gap, m.count = st / g.n, sb / g.n, m.value, g.n
  end
  for _, m in ipairs(means) do rows[#rows + 1] = m end
  return rows
end

return M
