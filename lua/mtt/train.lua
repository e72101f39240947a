-- mtt.train: the language-model training loop, with a run folder that survives a kill.
--
--   local result = mtt.train{model = gpt, data = corpus, steps = 2000, batch_size = 16,
--                            lr = 6e-4, warmup = 100, run_dir = 'runs/tiny', eval_every = 200}
--
-- What it does, in order, each step: draw grad_accum micro-batches from data:batch('train', B),
-- run model(idx, targets) -> logits, loss, backward loss / grad_accum, clip the global gradient
-- norm, set the learning rate from the schedule, one AdamW step (weight decay only on the
-- weights of 2 or more dims, as nanoGPT), zero the gradients. Every eval_every steps the mean
-- loss of eval_batches batches of data:batch('val', B) under no_grad and model:eval().
--
-- The run folder (run_dir): config.json (the resolved configuration), metrics.jsonl (one JSON
-- object a line: step, loss, lr, tokens_per_s, val_loss, elapsed), ckpt/step-N.safetensors
-- (mtt.checkpoint: the model's tensors under their own names, the optimizer's moments as
-- optimizer.exp_avg.<name> / optimizer.exp_avg_sq.<name>, and a state table with the step,
-- the random generators, the data cursor and the optimizer's step counts), written every
-- ckpt_every steps and at the end. With resume = true (the default) a run that finds a
-- checkpoint in its folder continues from it, and the continued losses are bitwise the ones an
-- uninterrupted run logs (same machine and thread count): everything a step depends on is in
-- the checkpoint. tests/lua/test_resume.lua kills a run with SIGKILL to check this.
--
-- Options (checked: a misspelt one is an error naming it), with their defaults:
--   model, data (required): model(idx, targets) -> logits, loss with named_parameters(),
--     state_dict(), load_state_dict(), train(), eval() (mtt.nn models); data:batch(split, B)
--     -> idx, targets, and data:state() / data:set_state() for exact resume (mtt.data.corpus)
--   steps, batch_size (required); grad_accum = 1 (micro-batches of batch_size per step)
--   lr = 3e-4, min_lr = lr / 10, warmup = 0 (steps), schedule = 'cosine' | 'linear' | 'constant'
--   weight_decay = 0.1, betas = {0.9, 0.95}, eps = 1e-8, clip = 1.0 (false: no clipping)
--   eval_every = 0 (never), eval_batches = 10; log_every = 10 (metrics.jsonl and plain lines)
--   ckpt_every = 0 (only at the end), keep_checkpoints = 2; resume = true
--   run_dir = 'runs/<name>' (or name = '<name>'; false: write nothing), seed (mtt.manual_seed
--     at a fresh start, for dropout), progress = true, on_step = fn(info) (info: step, steps,
--     loss, lr, tokens_per_s, elapsed, val_loss on eval steps; returning false stops the run
--     after a checkpoint)
--   ckpt_steps = {1, 2, 5, 10, ...}: checkpoints at these steps as well (the early-dynamics
--     schedule; mtt.train.checkpoint_steps(n) makes one); keep_checkpoints = 0 keeps them all
--   init = path (a .safetensors file or a model folder holding model.safetensors) or a state
--     dict: the weights a fresh start begins from (a resumed run takes its checkpoint's)
--   device = 'cpu' | 'cuda' | 'auto', precision = 'f32' | 'tf32' | 'bf16' (mtt.device.setup: bf16
--     matmuls with f32 master weights and optimizer state; on the cpu tf32/bf16 fall back to
--     f32, said on stderr); the model is moved to the device before the optimizer is made
-- Data with more to say (mtt.data.instruct): when data:batch returns a third value, info, and
-- data has loss_by_task(logits, targets, info) -> {name = {sum =, count =}}, the per-task mean
-- loss (per-token NLL of the forward that already ran, under no_grad) is logged as task_loss =
-- {name = mean} over the steps since the last log line, and val_task_loss on eval steps; with
-- info.n_tokens / info.n_target, real_tokens_per_s and target_tokens_per_s (pads not counted).
-- data:set_step(step) is called at the start of each step and data:begin_eval() before each
-- evaluation, when data has them.
-- Returns {step, loss, val_loss, losses = {[step] = loss}, val_losses, task_loss, val_task_loss,
-- elapsed, tokens, resumed_from, run_dir} (losses of the steps run by this call).
--
-- What it is not: a general trainer. One model, one data source, one optimizer family; recipes
-- compose phases (pre-training, instruction tuning) from calls to it.
local U = require 'mtt.util'
local options = require 'mtt.options'
local optim = require 'mtt.optim'
local autograd = require 'mtt.autograd'
local random = require 'mtt.random'
local schedule = require 'mtt.train.schedule'
local metrics = require 'mtt.train.metrics'
local progress = require 'mtt.train.progress'

local raise = U.raise
local M = { schedule = schedule, metrics = metrics, progress = progress }

local OPTION_SPEC = table.concat({
  'model:table|userdata|cdata data:table steps:number batch_size:number grad_accum:number',
  'lr:number min_lr:number warmup:number schedule:string weight_decay:number betas:table eps:number',
  'clip:number|boolean eval_every:number eval_batches:number ckpt_every:number keep_checkpoints:number',
  'run_dir:string|boolean name:string seed:number log_every:number resume:boolean on_step:function',
  'progress:boolean ckpt_steps:table init:string|table device:string precision:string' }, ' ')

-- The configuration keys a resumed run must share with the run that wrote the checkpoint: a
-- change to any of them would make the continued run a different run.
local RESUME_KEYS = { 'precision', 'steps', 'batch_size', 'grad_accum', 'lr', 'min_lr', 'warmup', 'schedule',
  'weight_decay', 'eps', 'clip', 'eval_every', 'eval_batches' }

local CKPT_FORMAT = 'mtt.train/1'

local function is_int(v) return U.is_int(v) end

-- ---- options ----
local function resolve(opts)
  local o = options.check('mtt.train', opts, OPTION_SPEC)
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  local function need(key)
    if c[key] == nil then raise(string.format("mtt.train: option '%s' is required", key)) end
  end
  need('model'); need('data'); need('steps'); need('batch_size')
  local function int(key, min)
    local v = c[key]
    if not is_int(v) or v < min then
      raise(string.format("mtt.train: option '%s' must be an integer >= %d, got %s", key, min, tostring(v)))
    end
  end
  c.grad_accum = c.grad_accum or 1
  c.lr = c.lr or 3e-4
  c.min_lr = c.min_lr or c.lr / 10
  c.warmup = c.warmup or 0
  c.schedule = c.schedule or 'cosine'
  c.weight_decay = c.weight_decay or 0.1
  c.betas = c.betas or { 0.9, 0.95 }
  c.eps = c.eps or 1e-8
  if c.clip == nil or c.clip == true then c.clip = 1.0 end
  if c.clip ~= false and (c.clip ~= c.clip or c.clip <= 0) then
    raise("mtt.train: option 'clip' must be a number > 0 or false, got " .. tostring(c.clip))
  end
  c.eval_every = c.eval_every or 0
  c.eval_batches = c.eval_batches or 10
  c.ckpt_every = c.ckpt_every or 0
  c.keep_checkpoints = c.keep_checkpoints or 2
  c.log_every = c.log_every or 10
  if c.resume == nil then c.resume = true end
  if c.progress == nil then c.progress = true end
  int('steps', 1); int('batch_size', 1); int('grad_accum', 1); int('warmup', 0); int('eval_every', 0)
  int('eval_batches', 1); int('ckpt_every', 0); int('keep_checkpoints', 0); int('log_every', 1)
  c.ckpt_at = {}
  for i, s in ipairs(c.ckpt_steps or {}) do
    if not is_int(s) or s < 1 then
      raise(string.format("mtt.train: option 'ckpt_steps' must list integers >= 1, got %s at [%d]", tostring(s), i))
    end
    c.ckpt_at[s] = true
  end
  if c.seed ~= nil then int('seed', 0) end
  if c.run_dir == nil then
    if c.name == nil then
      raise("mtt.train: give run_dir = 'runs/<name>' (or name = '<name>'), or run_dir = false to write nothing")
    end
    c.run_dir = 'runs/' .. c.name
  end
  if c.run_dir == true then raise("mtt.train: option 'run_dir' must be a folder name or false") end
  if type(c.data.batch) ~= 'function' then raise('mtt.train: data must have a batch(split, batch_size) method') end
  -- the schedule checks lr, min_lr, warmup and the schedule name
  c.lr_at = schedule.make { lr = c.lr, min_lr = c.min_lr, warmup = c.warmup, steps = c.steps, kind = c.schedule }
  return c
end

-- ---- the model's parameters ----
-- named_parameters() may give a list of {name, tensor}, a table name -> tensor, or an
-- iterator of (name, tensor); the result is a list of {name, tensor} in a fixed order.
local function named_parameters(model)
  local np = model:named_parameters()
  local list = {}
  if type(np) == 'function' then
    for name, t in np do list[#list + 1] = { name, t } end
  elseif type(np) == 'table' and type(np[1]) == 'table' then
    for i, e in ipairs(np) do list[i] = { e[1] or e.name, e[2] or e.tensor } end
  elseif type(np) == 'table' then
    local names = {}
    for name in pairs(np) do names[#names + 1] = name end
    table.sort(names)
    for i, name in ipairs(names) do list[i] = { name, np[name] } end
  else
    raise('mtt.train: model:named_parameters() returned a ' .. type(np))
  end
  if #list == 0 then raise('mtt.train: the model has no parameters') end
  return list
end

-- Two AdamW optimizers that step together: weights of 2+ dims with weight decay, the rest
-- (biases, layer-norm gains) without, as nanoGPT's param groups.
local function make_optimizers(c, model)
  local groups = { decay = { names = {}, params = {} }, no_decay = { names = {}, params = {} } }
  for _, e in ipairs(named_parameters(model)) do
    local g = e[2].ndim >= 2 and groups.decay or groups.no_decay
    g.names[#g.names + 1], g.params[#g.params + 1] = e[1], e[2]
  end
  local list = {}
  for _, key in ipairs({ 'decay', 'no_decay' }) do
    local g = groups[key]
    if #g.params > 0 then
      g.key = key
      g.opt = optim.AdamW(g.params, { lr = c.lr, betas = { c.betas[1], c.betas[2] }, eps = c.eps,
        weight_decay = key == 'decay' and c.weight_decay or 0 })
      list[#list + 1] = g
    end
  end
  return list
end

local function all_params(groups)
  local ps = {}
  for _, g in ipairs(groups) do
    for _, p in ipairs(g.params) do ps[#ps + 1] = p end
  end
  return ps
end

-- ---- checkpoints ----
local function ckpt_path(c, step) return string.format('%s/ckpt/step-%d.safetensors', c.run_dir, step) end

local function generator_state(gen)
  return gen and random.is_generator(gen) and gen:get_state() or nil
end

local function save_checkpoint(c, model, groups, st)
  local checkpoint = require 'mtt.checkpoint'
  local tensors = {}
  -- a tied tensor once (nn modules), under its first name
  local sd = model.state_dict_names and model:state_dict({ tied = false }) or model:state_dict()
  for name, t in pairs(sd) do tensors[name] = t end
  local opt_state = {}
  for _, g in ipairs(groups) do
    -- the moments themselves, not opt:state_dict()'s copies: saving needs no second copy of them
    for i, s in pairs(g.opt.state) do
      tensors['optimizer.exp_avg.' .. g.names[i]] = s.exp_avg
      tensors['optimizer.exp_avg_sq.' .. g.names[i]] = s.exp_avg_sq
    end
    opt_state[g.key] = { step = g.opt.step_count }
  end
  local state = {
    format = CKPT_FORMAT, step = st.step, elapsed = st.elapsed, tokens = st.tokens,
    rng = random.default_generator():get_state(), model_rng = generator_state(model.generator),
    data = c.data.state and c.data:state() or nil, optimizer = opt_state, config = {},
  }
  for _, k in ipairs(RESUME_KEYS) do state.config[k] = c[k] end
  state.task_acc = st.task_acc -- the per-task sums since the last log line (exact task_loss on resume)
  checkpoint.save(ckpt_path(c, st.step), { tensors = tensors, state = state })
  if c.keep_checkpoints > 0 then checkpoint.prune(c.run_dir .. '/ckpt', c.keep_checkpoints) end
end

-- The model's tensors of a loaded training checkpoint (mtt.checkpoint.load(path)): everything
-- but the optimizer's moments, ready for model:load_state_dict.
function M.model_state(ck)
  local sd = {}
  for name, t in pairs(ck.tensors) do
    if name:sub(1, 10) ~= 'optimizer.' then sd[name] = t end
  end
  return sd
end

local function load_checkpoint(c, model, path)
  local checkpoint = require 'mtt.checkpoint'
  local ck = checkpoint.load(path)
  local state = ck.state or {}
  if state.format ~= CKPT_FORMAT then
    raise(string.format('mtt.train: %s is not a training checkpoint (format %s, expected %s)', path,
      tostring(state.format), CKPT_FORMAT))
  end
  for _, k in ipairs(RESUME_KEYS) do
    local a, b = state.config and state.config[k], c[k]
    if a ~= b and not (type(a) == 'number' and type(b) == 'number' and math.abs(a - b) <= 1e-12 * math.abs(b)) then
      raise(string.format("mtt.train: cannot resume from %s: option '%s' was %s there and is %s now " ..
        "(use resume = false or another run_dir)", path, k, tostring(a), tostring(b)))
    end
  end
  -- the model's tensors (load_state_dict copies them out of the memory-mapped file)
  model:load_state_dict(M.model_state(ck))
  return ck, state
end

-- After the model's weights are loaded: the optimizers' moments and step counts.
local function load_optimizer_state(groups, ck, state)
  for _, g in ipairs(groups) do
    local st = {}
    for i, name in ipairs(g.names) do
      local m, v = ck.tensors['optimizer.exp_avg.' .. name], ck.tensors['optimizer.exp_avg_sq.' .. name]
      if m and v then st[i] = { exp_avg = m, exp_avg_sq = v } end
    end
    local o = g.opt
    o:load_state_dict({ type = 'AdamW', step = (state.optimizer[g.key] or {}).step or 0, state = st,
      hyper = { lr = o.lr, betas = { o.betas[1], o.betas[2] }, eps = o.eps, weight_decay = o.weight_decay } })
  end
end

-- ---- the loop ----
local function describe_model(model)
  local info = { class = tostring(getmetatable(model) and getmetatable(model).__name or type(model)) }
  if type(model.config) == 'table' then info.config = model.config end
  if type(model.num_parameters) == 'function' then info.num_parameters = model:num_parameters() end
  return info
end

local function write_config(c, model)
  local cfg = {}
  for k, v in pairs(c) do
    if k ~= 'model' and k ~= 'data' and k ~= 'on_step' and k ~= 'lr_at' and k ~= 'ckpt_at' then cfg[k] = v end
  end
  cfg.model = describe_model(model)
  cfg.data = { n_tokens = c.data.n_tokens, block_size = c.data.block_size }
  if type(c.init) ~= 'string' then cfg.init = c.init and '(a state dict)' or nil end
  cfg.threads = require('mtt.ffi').C.mtt_get_num_threads()
  local ffi = require 'ffi'
  cfg.mtt_version = ffi.string(require('mtt.ffi').C.mtt_version())
  local ok, err = metrics.write_file(c.run_dir .. '/config.json', metrics.encode(cfg, '  ') .. '\n')
  if not ok then raise('mtt.train: cannot write config.json: ' .. tostring(err)) end
end

-- Adds the per-task sums of one forward into acc (name -> {sum, count}).
local function add_task_loss(c, acc, logits, targets, info)
  if info == nil or type(c.data.loss_by_task) ~= 'function' then return end
  for name, v in pairs(c.data:loss_by_task(logits, targets, info)) do
    local a = acc[name]
    if not a then a = { sum = 0, count = 0 }; acc[name] = a end
    a.sum, a.count = a.sum + v.sum, a.count + v.count
  end
end

local function task_means(acc)
  local out, any = {}, false
  for name, a in pairs(acc) do
    if a.count > 0 then out[name], any = a.sum / a.count, true end
  end
  return any and out or nil
end

local function evaluate(c, model)
  if model.eval then model:eval() end
  if c.data.begin_eval then c.data:begin_eval() end
  local total, acc = 0, {}
  autograd.no_grad(function()
    for _ = 1, c.eval_batches do
      local idx, targets, info = c.data:batch('val', c.batch_size)
      local logits, loss = model(idx, targets)
      total = total + loss:item()
      add_task_loss(c, acc, logits, targets, info)
    end
  end)
  if model.train then model:train() end
  return total / c.eval_batches, task_means(acc)
end

-- The weights of option init: a state dict, a .safetensors file, or a folder with model.safetensors.
local function load_init(c, model)
  local sd = c.init
  if type(sd) == 'string' then
    local io_ = require 'mtt.io'
    local path = sd
    local st = io_.stat(path)
    if st and st.is_dir then path = path .. '/model.safetensors' end
    if not io_.stat(path) then raise("mtt.train: option 'init': no such file " .. path) end
    sd = io_.load_safetensors(path)
  end
  model:load_state_dict(sd)
end

function M.train(opts)
  local c = resolve(opts)
  local model = c.model
  local writing = c.run_dir ~= false
  if writing then require('mtt.sandbox').check_write(c.run_dir, 'mtt.train') end
  local st = { step = 0, elapsed = 0, tokens = 0, task_acc = {} }
  local ck, ck_state

  if writing then
    local checkpoint = require 'mtt.checkpoint'
    local dir = c.run_dir .. '/ckpt'
    require('mtt.io').makedirs(dir)
    local path = c.resume and checkpoint.latest(dir)
    if path then
      ck, ck_state = load_checkpoint(c, model, path)
      st.step, st.elapsed, st.tokens = ck_state.step, ck_state.elapsed or 0, ck_state.tokens or 0
      st.task_acc = ck_state.task_acc or {}
      metrics.truncate(c.run_dir .. '/metrics.jsonl', st.step)
    else
      -- a fresh start in a used folder: the old run's files would mix with this one's
      checkpoint.prune(dir, 0)
      os.remove(c.run_dir .. '/metrics.jsonl')
    end
    write_config(c, model)
  end
  if c.init and not ck then load_init(c, model) end
  if c.device or c.precision then -- (models that are not mtt.nn modules stay where they are)
    local device = require 'mtt.device'
    model = device.prepare(model, device.setup({ device = c.device, precision = c.precision }))
  end

  local groups = make_optimizers(c, model)
  local params = all_params(groups)
  if ck then
    load_optimizer_state(groups, ck, ck_state)
    if ck_state.rng then random.default_generator():set_state(ck_state.rng) end
    if ck_state.model_rng and random.is_generator(model.generator) then model.generator:set_state(ck_state.model_rng) end
    if ck_state.data ~= nil then
      if not c.data.set_state then raise('mtt.train: the checkpoint has a data cursor but data has no set_state') end
      c.data:set_state(ck_state.data)
    end
    ck = nil
  elseif c.seed then
    random.manual_seed(c.seed)
  end

  local log = writing and assert(metrics.writer(c.run_dir .. '/metrics.jsonl')) or nil
  local bar = c.progress and progress.new { steps = c.steps, log_every = c.log_every } or nil
  local function say(line) if bar then bar:print(line) end end
  if st.step >= c.steps then
    say(string.format('%s: already complete (step %d of %d)', c.run_dir, st.step, c.steps))
  elseif st.step > 0 then
    say(string.format('resumed from step %d (%s)', st.step, ckpt_path(c, st.step)))
  end

  local result = { run_dir = c.run_dir or nil, losses = {}, val_losses = {}, resumed_from = st.step > 0 and st.step or nil }
  local first_step = st.step
  local t_start = progress.now()
  local elapsed0, tokens0 = st.elapsed, st.tokens
  local t_log, tokens_log, real_log, target_log = t_start, 0, 0, 0
  if model.train then model:train() end

  local step = st.step
  while step < c.steps do
    step = step + 1
    local loss_sum, tokens = 0, 0
    if c.data.set_step then c.data:set_step(step) end
    for _ = 1, c.grad_accum do
      local idx, targets, info = c.data:batch('train', c.batch_size)
      local logits, loss = model(idx, targets)
      if c.grad_accum > 1 then (loss * (1 / c.grad_accum)):backward() else loss:backward() end
      loss_sum = loss_sum + loss:item()
      tokens = tokens + idx:numel()
      if type(info) == 'table' then
        add_task_loss(c, st.task_acc, logits, targets, info)
        real_log = real_log + (info.n_tokens or 0)
        target_log = target_log + (info.n_target or 0)
      end
    end
    local loss = loss_sum / c.grad_accum
    if loss ~= loss or loss == math.huge then
      raise(string.format('mtt.train: the loss is %s at step %d (lower lr, or check the data)', tostring(loss), step))
    end
    if c.clip then optim.utils.clip_grad_norm_(params, c.clip) end
    local lr = c.lr_at(step)
    for _, g in ipairs(groups) do
      g.opt.lr = lr
      g.opt:step()
      g.opt:zero_grad()
    end
    st.step, st.tokens = step, st.tokens + tokens
    tokens_log = tokens_log + tokens
    result.losses[step], result.loss = loss, loss

    local now = progress.now()
    st.elapsed = elapsed0 + (now - t_start)
    local record
    local is_eval = c.eval_every > 0 and (step % c.eval_every == 0 or step == c.steps)
    if step % c.log_every == 0 or step == c.steps or is_eval then
      local dt = math.max(now - t_log, 1e-9)
      record = { step = step, loss = loss, lr = lr, tokens_per_s = tokens_log / dt }
      if real_log > 0 then record.real_tokens_per_s, record.target_tokens_per_s = real_log / dt, target_log / dt end
      record.task_loss = task_means(st.task_acc)
      result.task_loss = record.task_loss or result.task_loss
      st.task_acc = {}
      t_log, tokens_log, real_log, target_log = now, 0, 0, 0
    end
    local info = { step = step, steps = c.steps, loss = loss, lr = lr, elapsed = st.elapsed,
      elapsed_run = now - t_start, first_step = first_step,
      tokens_per_s = (st.tokens - tokens0) / math.max(now - t_start, 1e-9) }
    if bar then bar:update(step, info) end
    if is_eval then
      local val, val_tasks = evaluate(c, model)
      result.val_losses[step], result.val_loss = val, val
      record.val_loss = val
      record.val_task_loss = val_tasks
      result.val_task_loss = val_tasks or result.val_task_loss
      info.val_loss = val
      st.elapsed = elapsed0 + (progress.now() - t_start)
      say(string.format('step %d: val loss %.4f', step, val))
    end
    if record then
      record.elapsed = st.elapsed
      if log then log.log(record) end
    end
    local stop = c.on_step and c.on_step(info) == false
    if writing and ((c.ckpt_every > 0 and step % c.ckpt_every == 0) or c.ckpt_at[step] or step == c.steps or stop) then
      save_checkpoint(c, model, groups, st)
    end
    if stop then break end
  end
  if bar then bar:finish() end
  if log then log.close() end
  result.step, result.elapsed, result.tokens = st.step, st.elapsed, st.tokens
  return result
end

-- checkpoint_steps(n[, {first = 1}]) -> {1, 2, 5, 10, 20, 50, 100, ...} up to n, and n: dense early,
-- sparse later (a 1-2-5 series), for ckpt_steps.
function M.checkpoint_steps(n, opts)
  local o = options.check('mtt.train.checkpoint_steps', opts, 'first:number')
  if not is_int(n) or n < 1 then raise('mtt.train.checkpoint_steps: n must be an integer >= 1, got ' .. tostring(n)) end
  local out, first, decade = {}, o.first or 1, 1
  while decade <= n do
    for _, m in ipairs({ 1, 2, 5 }) do
      local s = m * decade
      if s >= first and s < n then out[#out + 1] = s end
    end
    decade = decade * 10
  end
  out[#out + 1] = n
  return out
end

-- mtt.train{...} calls M.train; mtt.train.schedule, .metrics, .progress are the parts.
return setmetatable(M, { __call = function(_, opts) return M.train(opts) end })
