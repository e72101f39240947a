-- recipes/instruct.lua: instruction-tune the pre-trained base model on the training tasks.
--
-- Base model: runs/pretrain/model (recipes/pretrain.lua; --set base=DIR for another), its
-- weights and tokenizer. Tasks: the training split of the shipped collection
-- (tasks/splits/default/train_tasks.txt, files in build/data/tasks; while the collection is
-- absent, the Super-NaturalInstructions files in ../shared/data/niv2). Each task's instances
-- are split into train and held-out test instances (mtt.tasks); training draws from the train
-- instances, and the held-out instances of the same tasks give the per-task validation loss
-- (the study's "held-out loss on seen tasks").
-- Encoding: Tk-Instruct prompts (definition, k = 0 positive examples, "Now complete the
-- following example"), the loss on the target and end-of-text tokens only, at most block_size
-- (the model's positions) tokens, demonstrations dropped before the input is cut.
-- Mixture: examples-proportional with cap K = 500 (seqio), temperature T = 1 (--set
-- temperature_end=10 raises T linearly over training: the study's "reverse annealing"), seed 1.
-- Replay: none by default; --set replay=0.25 mixes that fraction of each batch's rows (or
-- tokens, replay_by=tokens) of pre-training text from the default corpus, its loss logged as
-- task 'replay'.
-- Batching: padded, length-bucketed batches of 16 (mtt.data.instruct; pack=1 packs rows).
-- Training: AdamW (0.9, 0.95), weight decay 0.1, lr 3e-4 with 20 warm-up steps and cosine decay
-- to 3e-5 over 400 steps, clipping at 1; evaluated every 50 steps on 4 held-out batches;
-- checkpoints at 1, 2, 5, 10, 20, 50, 100, 200 and the last step (all kept: the early-dynamics
-- analysis reads them), resuming from the last one if stopped.
--
-- Output: runs/instruct/ with config.json, metrics.jsonl (loss, task_loss = {task = mean} per
-- log line, val_loss and val_task_loss per evaluation), ckpt/step-N.safetensors, and
-- runs/instruct/model/{config.json, model.safetensors, tokenizer.json} as pretrain writes them.
-- At the end: the per-task held-out loss before and after tuning.
--
--   mtt run recipes/instruct.lua                 (from runs/pretrain/model; under 20 minutes on 2 cores)
--   mtt run recipes/instruct.lua --quick         (from runs/pretrain-quick/model, under a minute)
--   mtt run recipes/instruct.lua --set replay=0.25 --set run_dir=runs/instruct-replay
local mtt = require 'mtt'

local cfg = {
  base = 'runs/pretrain/model', run_dir = 'runs/instruct',
  tasks_dir = mtt.root .. '/build/data/tasks', split = mtt.root .. '/tasks/splits/default/train_tasks.txt',
  fallback_tasks = mtt.root .. '/../shared/data/niv2',
  format = 'tk', k = 0, rate = 'proportional', cap = 500, temperature = 1, temperature_end = 0,
  replay = 0, replay_by = 'examples', corpus = mtt.root .. '/build/data/corpus', corpus_bytes = 1000000,
  pack = 0, bucket = 8,
  steps = 400, batch_size = 16, lr = 3e-4, min_lr = 3e-5, warmup = 20, weight_decay = 0.1,
  eval_every = 50, eval_batches = 4, log_every = 10, seed = 1, threads = 0,
  val_per_task = 16, -- held-out instances per task in the before/after table
}
-- --quick: the tiny base model (32 positions: 'exemplars' prompts, which have no definition)
local QUICK = { base = 'runs/pretrain-quick/model', run_dir = 'runs/instruct-quick', format = 'exemplars',
  steps = 60, batch_size = 16, lr = 3e-3, min_lr = 3e-4, warmup = 5, eval_every = 20, eval_batches = 2,
  log_every = 10, val_per_task = 8, corpus_bytes = 100000 }

-- ---- arguments: --quick, --set key=value (typed as the default; unknown keys are errors) ----
do
  local args, i, sets = arg or {}, 1, {}
  while args[i] do
    local a = args[i]
    if a == '--quick' then
      for k, v in pairs(QUICK) do cfg[k] = v end
      i = i + 1
    elseif a == '--set' or a:match('^%-%-set=') then
      local kv = a == '--set' and args[i + 1] or a:sub(7)
      i = i + (a == '--set' and 2 or 1)
      local k, v = tostring(kv):match('^([%w_]+)=(.*)$')
      if not k then error('instruct: --set needs key=value, got ' .. tostring(kv), 0) end
      sets[#sets + 1] = { k, v }
    else
      error('instruct: unknown argument ' .. a .. ' (accepted: --quick, --set key=value)', 0)
    end
  end
  for _, kv in ipairs(sets) do
    local k, v = kv[1], kv[2]
    if cfg[k] == nil then
      local keys = {}
      for name in pairs(cfg) do keys[#keys + 1] = name end
      table.sort(keys)
      error(string.format("instruct: unknown setting '%s' (accepted: %s)", k, table.concat(keys, ', ')), 0)
    end
    if type(cfg[k]) == 'number' then
      cfg[k] = tonumber(v) or error(string.format("instruct: setting '%s' needs a number, got '%s'", k, v), 0)
    else
      cfg[k] = v
    end
  end
end
if cfg.threads > 0 then mtt.threads(cfg.threads) end
local t_start = os.time()

-- ---- base model and tokenizer ----
for _, f in ipairs({ 'config.json', 'model.safetensors', 'tokenizer.json' }) do
  if not mtt.io.stat(cfg.base .. '/' .. f) then
    error(string.format('instruct: %s/%s is missing; pre-train first (mtt run recipes/pretrain.lua%s)', cfg.base, f,
      cfg.base:find('quick') and ' --quick' or ''), 0)
  end
end
local tok = mtt.tokenizer.load(cfg.base .. '/tokenizer.json')
local model = mtt.nn.GPT(cfg.base .. '/config.json')
local block = model.config.n_positions
print(string.format('base model: %s (%.2fM parameters, %d positions, vocabulary %d)', cfg.base,
  model:num_parameters() / 1e6, block, tok.vocab_size))

-- ---- tasks ----
local tasks, from
if mtt.io.stat(cfg.split) and mtt.io.stat(cfg.tasks_dir) then
  tasks, from = mtt.tasks.load(cfg.split, { tasks_dir = cfg.tasks_dir }), cfg.split
else
  tasks, from = mtt.tasks.load(cfg.fallback_tasks), cfg.fallback_tasks .. ' (the shipped collection is not built)'
end
local n_train, n_test = 0, 0
for _, t in ipairs(tasks) do n_train, n_test = n_train + #t.train, n_test + #t.test end
print(string.format('tasks: %d from %s; %d training and %d held-out instances', #tasks, from, n_train, n_test))

-- ---- mixture ----
local temperature = cfg.temperature
if cfg.temperature_end > 0 then
  temperature = mtt.data.mixture.schedule { from = cfg.temperature, to = cfg.temperature_end, steps = cfg.steps }
end
local mix = mtt.data.mixture { tasks = tasks, rate = cfg.rate, cap = cfg.rate == 'uniform' and nil or cfg.cap,
  temperature = temperature, seed = cfg.seed }
print(mix:describe(1))
if cfg.temperature_end > 0 then print(mix:describe(cfg.steps)) end

-- ---- replay corpus (optional) ----
local replay
if cfg.replay > 0 then
  local texts = {}
  for _, name in ipairs({ 'bible.txt', 'fortunes.txt', 'jargon.txt', 'wordnet.txt' }) do
    local f = io.open(cfg.corpus .. '/' .. name, 'rb')
    if not f then error('instruct: replay needs the default corpus; ' .. cfg.corpus .. '/' .. name .. ' is missing', 0) end
    local text = f:read(cfg.corpus_bytes)
    f:close()
    for doc in (text .. '\n\n'):gmatch('(.-)\n\n') do if doc ~= '' then texts[#texts + 1] = doc end end
  end
  local corpus = mtt.data.corpus { texts = texts, tokenizer = tok, block_size = block, seed = cfg.seed, val_fraction = 0.05 }
  replay = { corpus = corpus, ratio = cfg.replay, by = cfg.replay_by }
  print(string.format('replay: %g of each batch (by %s) from %s', cfg.replay, cfg.replay_by, tostring(corpus)))
end

local data = mtt.data.instruct { mixture = mix, tokenizer = tok, block_size = block, format = cfg.format, k = cfg.k,
  replay = replay, pack = cfg.pack ~= 0, bucket = cfg.bucket, seed = cfg.seed }
print(tostring(data))

-- ---- per-task held-out loss (the first val_per_task held-out instances of every task) ----
local function held_out_loss()
  local acc = {}
  model:eval()
  mtt.no_grad(function()
    for idx, targets, info in data:iter_val(cfg.batch_size, cfg.val_per_task * #tasks) do
      local logits = model(idx)
      for name, v in pairs(data:loss_by_task(logits, targets, info)) do
        local a = acc[name] or { sum = 0, count = 0 }
        a.sum, a.count = a.sum + v.sum, a.count + v.count
        acc[name] = a
      end
    end
  end)
  model:train()
  local out = {}
  for name, a in pairs(acc) do out[name] = a.sum / a.count end
  return out
end

-- ---- training ----
mtt.io.makedirs(cfg.run_dir)
local res = mtt.train { model = model, data = data, init = cfg.base, run_dir = cfg.run_dir, steps = cfg.steps,
  batch_size = cfg.batch_size, lr = cfg.lr, min_lr = cfg.min_lr, warmup = cfg.warmup, schedule = 'cosine',
  weight_decay = cfg.weight_decay, betas = { 0.9, 0.95 }, clip = 1.0, eval_every = cfg.eval_every,
  eval_batches = cfg.eval_batches, log_every = cfg.log_every, seed = cfg.seed,
  ckpt_steps = mtt.train.checkpoint_steps(cfg.steps), keep_checkpoints = 0 }

-- the held-out loss of the base model (loaded again: the tuned one is in `model`)
local after = held_out_loss()
local tuned = model:state_dict()
local saved = {}
for k, v in pairs(tuned) do saved[k] = v:clone() end
model:load_state_dict((mtt.io.load_safetensors(cfg.base .. '/model.safetensors')))
local before = held_out_loss()
model:load_state_dict(saved)

local names = {}
for name in pairs(after) do names[#names + 1] = name end
table.sort(names)
local fell, sb, sa = 0, 0, 0
print(string.format('held-out loss per task (first %d held-out instances of each), base -> tuned:', cfg.val_per_task))
for _, name in ipairs(names) do
  local b, a = before[name], after[name]
  if a < b then fell = fell + 1 end
  sb, sa = sb + b, sa + a
  print(string.format('  %-48s %7.3f -> %7.3f', name, b, a))
end
print(string.format('  mean over %d tasks: %.3f -> %.3f; the loss fell on %d of %d tasks', #names, sb / #names,
  sa / #names, fell, #names))

-- ---- the tuned model: config, weights, tokenizer ----
local model_dir = cfg.run_dir .. '/model'
mtt.io.makedirs(model_dir)
local mcfg = {}
for k, v in pairs(model.config) do mcfg[k] = v end
mcfg.model_type, mcfg.architectures = 'gpt2', { 'GPT2LMHeadModel' }
mcfg.bos_token_id, mcfg.eos_token_id = tok.eot_id, tok.eot_id
assert(mtt.train.metrics.write_file(model_dir .. '/config.json', mtt.train.metrics.encode(mcfg, '  ') .. '\n'))
mtt.io.save_safetensors(model_dir .. '/model.safetensors', model:state_dict({ tied = false }), { format = 'pt' })
tok:save(model_dir .. '/tokenizer.json')
print(string.format('tuned model: %s/{config.json, model.safetensors, tokenizer.json}', model_dir))
print(string.format('done: %d steps, final training loss %s, %d s', res.step,
  res.loss and string.format('%.4f', res.loss) or '-', os.time() - t_start))
