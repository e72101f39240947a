-- mtt.eval.icl: in-context evaluation, as lm-evaluation-harness does it.
--
--   local rows = mtt.eval.icl{model = gpt, tokenizer = tok, tasks = heldout, k = {0, 2},
--     format = 'exemplars', seed = 1, max_instances = 40, scores = {'loss', 'acc', 'generate'},
--     max_new_tokens = 32, stop = {'\n'}, batch_size = 16, samples = 'runs/x/icl.jsonl'}
--
-- For each task, each k, each seed: every instance of task.test (the first max_instances) gets
-- k demonstrations drawn from task.train by a generator seeded by (seed, task name, instance
-- id), never the instance itself (mtt.eval.rng: the draw depends on that key only, and the
-- k-shot demonstrations are the first k of the same draw, so 2-shot extends 1-shot). The
-- prompt is mtt.tasks.encode's, truncated by it to the model's positions. Scores:
--   loss        the study's ICL loss: per instance the mean NLL per token of the target
--               (reference output + end of text), then the mean over instances;
--   acc         (tasks with options) rank classification: the option whose ' ' .. option has
--               the largest summed log-likelihood after the prompt (end of text not scored, as
--               lm-eval scores continuations); right when it is one of the outputs;
--   acc_norm    the same, each sum divided by the continuation's length in bytes;
--   exact_match, rouge_l ('generate'): greedy decoding, stopping at end of text (always) or a
--               stop string (default '\n'), at most max_new_tokens, scored by mtt.metrics
--               against every output (the max).
-- Returns rows {task =, k =, seed =, metric =, value =, n = instances}, then per (k, seed,
-- metric) the mean over the tasks that have the metric: {task = '*', ..., n = tasks}.
-- samples = path writes one JSON line per instance and (k, seed): task, k, seed, id, prompt,
-- target, output, scores.
local U = require 'mtt.util'
local options = require 'mtt.options'
local score = require 'mtt.eval.score'
local rng = require 'mtt.eval.rng'

local raise = U.raise

local I = {}

I.METRICS = { 'loss', 'acc', 'acc_norm', 'exact_match', 'rouge_l' }
local SCORES = { loss = true, acc = true, generate = true }

-- The library parts written next to this one, found when first needed.
local function tasks_lib() return require 'mtt.tasks' end
local function metrics_lib() return require 'mtt.metrics' end

local function list_of(v, what, fname)
  if type(v) == 'number' then return { v } end
  if type(v) ~= 'table' or #v == 0 then raise(string.format('%s: %s must be a number or a non-empty list', fname, what)) end
  for i, x in ipairs(v) do
    if not U.is_int(x) or x < 0 then raise(string.format('%s: %s[%d] must be an integer >= 0, got %s', fname, what, i, tostring(x))) end
  end
  return v
end
I.list_of = list_of

-- tasks: an array of Task, or a spec for mtt.tasks.load.
function I.resolve_tasks(tasks, fname)
  if type(tasks) == 'string' or (type(tasks) == 'table' and type(tasks[1]) == 'string') then
    tasks = tasks_lib().load(tasks)
  end
  if type(tasks) ~= 'table' or #tasks == 0 then raise(fname .. ': tasks must be a non-empty list of tasks') end
  for i, t in ipairs(tasks) do
    if type(t) ~= 'table' or type(t.name) ~= 'string' then raise(string.format('%s: tasks[%d] is not a task', fname, i)) end
    if type(t.test) ~= 'table' or type(t.train) ~= 'table' then
      raise(string.format("%s: task '%s' has no train/test split", fname, t.name))
    end
  end
  return tasks
end

function I.resolve_scores(scores, fname)
  local set = {}
  for i, s in ipairs(scores or { 'loss', 'acc', 'generate' }) do
    if not SCORES[s] then
      raise(string.format("%s: scores[%d] is '%s' (accepted: loss, acc, generate)", fname, i, tostring(s)))
    end
    set[s] = true
  end
  return set
end

local function slice(list, a, b)
  local out = {}
  for i = a, b do out[#out + 1] = list[i] end
  return out
end

local function trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

local function instance_id(inst, i) return inst.id ~= nil and tostring(inst.id) or tostring(i) end

-- Scores one task for one k and seed. cfg: model, tokenizer, format, k, seed, max_instances,
-- scores (set), max_new_tokens, stop, batch_size, demo_pool (default task.train), demo_key
-- (extra key part for the draw, default none), sample (fn(row) or nil), extra (fields added to
-- sample rows). Returns {metric -> value}, number of instances.
function I.evaluate_task(task, cfg)
  local tasks, tok, model = tasks_lib(), cfg.tokenizer, cfg.model
  local npos = score.max_positions(model)
  if npos == math.huge then npos = 1e9 end
  local max_new = cfg.max_new_tokens or 32
  local pool = cfg.demo_pool or task.train
  local test = slice(task.test, 1, math.min(#task.test, cfg.max_instances or #task.test))
  if #test == 0 then raise(string.format("eval: task '%s' has no test instances", task.name)) end
  local has_options = cfg.scores.acc and type(task.options) == 'table' and #task.options > 0
  local eot = tok.eot_id

  -- 'tk' takes its k demonstrations from the task's positive examples (Tk-Instruct); the other
  -- encodings get the ones drawn here
  local tk = cfg.format == 'tk'
  local function encode(inst, demos, output, max_len)
    return tasks.encode(tok, task, inst, { format = cfg.format, k = tk and cfg.k or #demos,
      demos = (not tk and #demos > 0) and demos or nil, seed = cfg.seed, max_len = max_len, output = output })
  end

  -- With a KV cache, the continuations of one prompt (reference, options, generation) start
  -- from one pass over the prompt (score.prefix); the rest goes to padded batches.
  local use_prefix = model.new_cache and model.forward_cached and (has_options or cfg.scores.generate)
  local cache = use_prefix and model:new_cache(1, npos) or nil
  local seqs, items = {}, {}
  score.evaluating(model, function()
    for i, inst in ipairs(test) do
      local id = instance_id(inst, i)
      local r = rng.new(cfg.seed, task.name, id, cfg.demo_key or '')
      local demos = tk and {} or r:sample(pool, cfg.k, function(d) return d == inst or (d.id ~= nil and tostring(d.id) == id) end)
      local it = { inst = inst, id = id, demos = demos }
      local e = encode(inst, demos, nil, npos)
      it.enc = e
      local prompt = slice(e.ids, 1, e.target_start - 1)
      local pf = use_prefix and score.prefix(model, prompt, cache) or nil
      -- the log-likelihood of enc.ids[target_start..last] after its prompt
      local function want(enc, last)
        if pf and enc.target_start == e.target_start then
          local same = true
          for j = 1, e.target_start - 1 do if enc.ids[j] ~= e.ids[j] then same = false; break end end
          if same then return { r = pf:loglik(slice(enc.ids, enc.target_start, last)) } end
        end
        seqs[#seqs + 1] = { ids = slice(enc.ids, 1, last), from = enc.target_start }
        return { at = #seqs }
      end
      if cfg.scores.loss then it.loss = want(e, #e.ids) end
      if has_options then
        it.opts = {}
        for j, option in ipairs(task.options) do
          local oe = encode(inst, demos, option, npos)
          local last = #oe.ids
          if oe.ids[last] == eot and last > oe.target_start then last = last - 1 end
          it.opts[j] = want(oe, last)
          it.opts[j].bytes = #tok:decode(slice(oe.ids, oe.target_start, last))
        end
      end
      if cfg.scores.generate then
        local gopts = { max_new_tokens = max_new, stop = cfg.stop, eot = eot }
        local output
        local same_prompt = true
        if #prompt + max_new > npos then
          -- room for the new tokens: the encoder truncates the prompt (as for the target); where
          -- even its fixed frame leaves no room, the prompt stays and fewer tokens are generated
          -- (or, with no room at all, only the prompt's last ids are kept)
          local n_target = #e.ids - e.target_start + 1
          local ok, e2 = pcall(encode, inst, demos, nil, math.max(npos - max_new + n_target, n_target + 1))
          if ok and e2.target_start - 1 + max_new <= npos then
            prompt, same_prompt = slice(e2.ids, 1, e2.target_start - 1), false
          elseif #prompt < npos then
            gopts.max_new_tokens = npos - #prompt
          else
            prompt, same_prompt = slice(prompt, #prompt - (npos - max_new) + 1, #prompt), false
          end
        end
        if pf and same_prompt then output = pf:generate(tok, gopts)
        else output = score.generate(model, tok, prompt, gopts) end
        it.output = trim(output)
      end
      items[i] = it
    end
  end)
  local res = score.loglik(model, seqs, { batch_size = cfg.batch_size })
  local function got(x) return x.r or res[x.at] end

  local sums = {}
  for _, m in ipairs(I.METRICS) do sums[m] = 0 end
  local M = metrics_lib()
  for _, it in ipairs(items) do
    local s, e, output = {}, it.enc, it.output
    if it.loss then
      local r = got(it.loss)
      s.loss = -r.logprob / r.n
    end
    if it.opts then
      local gold = {}
      for _, o in ipairs(it.inst.outputs) do gold[trim(o)] = true end
      local best, best_norm, bv, bn
      for j, oa in ipairs(it.opts) do
        local lp = got(oa).logprob
        local norm = lp / math.max(oa.bytes, 1)
        if not bv or lp > bv then best, bv = j, lp end
        if not bn or norm > bn then best_norm, bn = j, norm end
      end
      s.acc = gold[trim(task.options[best])] and 1 or 0
      s.acc_norm = gold[trim(task.options[best_norm])] and 1 or 0
      s.choice, s.choice_norm = task.options[best], task.options[best_norm]
    end
    if output then
      s.exact_match = M.exact_match(output, it.inst.outputs)
      s.rouge_l = M.rouge_l(output, it.inst.outputs)
    end
    for _, m in ipairs(I.METRICS) do if s[m] then sums[m] = sums[m] + s[m] end end
    if cfg.sample then
      local t_end = #e.ids
      if e.ids[t_end] == eot then t_end = t_end - 1 end
      local row = { task = task.name, k = cfg.k, seed = cfg.seed, id = it.id,
        prompt = tok:decode(slice(e.ids, 1, e.target_start - 1)), target = tok:decode(slice(e.ids, e.target_start, t_end)),
        output = output, scores = s }
      for key, v in pairs(cfg.extra or {}) do row[key] = v end
      cfg.sample(row)
    end
  end
  local out = {}
  if cfg.scores.loss then out.loss = sums.loss / #items end
  if has_options then out.acc, out.acc_norm = sums.acc / #items, sums.acc_norm / #items end
  if cfg.scores.generate then out.exact_match, out.rouge_l = sums.exact_match / #items, sums.rouge_l / #items end
  return out, #items
end

-- A JSONL writer for per-sample rows (nil path: nil).
function I.sample_writer(path, fname)
  if not path then return nil end
  local f, err = io.open(path, 'w')
  if not f then raise(string.format('%s: cannot write samples to %s', fname, tostring(err))) end
  local cjson = require('cjson').new()
  return { write = function(row) f:write(cjson.encode(row), '\n') end, close = function() f:close() end }
end

-- Mean rows (task = '*') over the tasks, per group key; keys: the fields that identify a group.
function I.mean_rows(rows, keys)
  local groups, order = {}, {}
  for _, r in ipairs(rows) do
    if r.task ~= '*' then
      local parts = {}
      for _, k in ipairs(keys) do parts[#parts + 1] = tostring(r[k]) end
      local key = table.concat(parts, '|')
      local g = groups[key]
      if not g then
        g = { sum = 0, n = 0, proto = r }
        groups[key] = g
        order[#order + 1] = key
      end
      g.sum, g.n = g.sum + r.value, g.n + 1
    end
  end
  local out = {}
  for _, key in ipairs(order) do
    local g = groups[key]
    local row = { task = '*', value = g.sum / g.n }
    for _, k in ipairs(keys) do row[k] = g.proto[k] end
    out[#out + 1] = row
  end
  return out, groups, order
end

local SPEC = 'model:table tokenizer:table|cdata|userdata tasks:table|string k:number|table format:string ' ..
  'seed:number|table max_instances:number scores:table max_new_tokens:number stop:table batch_size:number ' ..
  'samples:string progress:boolean|function'

-- What the evaluations (icl, transfer) check first: the options against spec, a model and a
-- tokenizer given, the tasks. Returns o, tasks.
function I.check_opts(fname, opts, spec)
  local o = options.check(fname, opts, spec)
  if not o.model then raise(fname .. ': model is required') end
  if not o.tokenizer then raise(fname .. ': tokenizer is required') end
  return o, I.resolve_tasks(o.tasks, fname)
end

-- body(task index, task, x, seed) for every task, then every x (k or n), then every seed;
-- the samples writer is closed after the last, and also when body raises (the error goes on).
function I.each_run(tasks, xs, seeds, writer, body)
  local ok, err = pcall(function()
    for ti, task in ipairs(tasks) do
      for _, x in ipairs(xs) do
        for _, seed in ipairs(seeds) do body(ti, task, x, seed) end
      end
    end
  end)
  if writer then writer.close() end
  if not ok then error(err, 0) end
end

function I.icl(opts)
  local fname = 'mtt.eval.icl'
  local o, tasks = I.check_opts(fname, opts, SPEC)
  local ks = list_of(o.k or { 0 }, 'k', fname)
  local seeds = list_of(o.seed or 0, 'seed', fname)
  local writer = I.sample_writer(o.samples, fname)
  local cfg = { model = o.model, tokenizer = o.tokenizer, format = o.format or 'exemplars',
    max_instances = o.max_instances, scores = I.resolve_scores(o.scores, fname),
    max_new_tokens = o.max_new_tokens or 32, stop = o.stop or { '\n' }, batch_size = o.batch_size or 16,
    sample = writer and writer.write }
  local rows = {}
  I.each_run(tasks, ks, seeds, writer, function(ti, task, k, seed)
    cfg.k, cfg.seed = k, seed
    local vals, n = I.evaluate_task(task, cfg)
    for _, m in ipairs(I.METRICS) do
      if vals[m] then rows[#rows + 1] = { task = task.name, k = k, seed = seed, metric = m, value = vals[m], n = n } end
    end
    I.progress(o.progress, { task = task.name, index = ti, tasks = #tasks, k = k, seed = seed, values = vals },
      string.format('icl %d/%d %s k=%d seed=%d', ti, #tasks, task.name, k, seed))
  end)
  return I.append_means(rows, { 'k', 'seed', 'metric' }, 'n')
end

-- Appends to rows the mean over tasks per group of `keys` (task = '*'), with the number of
-- tasks in `count_field`; returns rows.
function I.append_means(rows, keys, count_field)
  local means, groups, order = I.mean_rows(rows, keys)
  for i, r in ipairs(means) do
    r[count_field] = groups[order[i]].n
    rows[#rows + 1] = r
  end
  return rows
end

-- The `progress` option of the evaluations: a function gets info, true prints `line` and the
-- loss on stderr.
function I.progress(progress, info, line)
  if not progress then return end
  if type(progress) == 'function' then progress(info)
  else io.stderr:write(line, ' loss=', tostring(info.values.loss), '\n') end
end

return I
