-- The instruction-tuning phase: a pre-trained base model tuned on the training tasks' mixture
-- (optionally with replay of pre-training text), with checkpoints on a dense-early schedule and
-- per-task train and held-out losses in metrics.jsonl; writes the tuned model folder.
--
--   local out = mtt.recipe.instruct(cfg)   -- cfg: M.DEFAULTS with changes (recipes/instruct.lua)
--   out.model_dir, out.before, out.after (task -> held-out loss), out.loss
--
-- Settings (M.DEFAULTS) and what they mean: see recipes/instruct.lua's header.
local mtt = require 'mtt'
local model_dir_lib = require 'mtt.recipe.model_dir'

local M = {}

M.DEFAULTS = {
  base = 'runs/pretrain/model', run_dir = 'runs/instruct',
  tasks_dir = mtt.root .. '/build/data/tasks', split = mtt.root .. '/tasks/splits/default/train_tasks.txt',
  fallback_tasks = mtt.root .. '/../shared/data/niv2',
  format = 'tk', k = 0, rate = 'proportional', cap = 500, temperature = 1, temperature_end = 0,
  replay = 0, replay_by = 'examples', corpus = mtt.root .. '/build/data/corpus', corpus_bytes = 1000000,
  pack = false, bucket = 8,
  steps = 400, batch_size = 16, lr = 3e-4, min_lr = 3e-5, warmup = 20, weight_decay = 0.1,
  eval_every = 50, eval_batches = 4, log_every = 10, seed = 1, threads = 0,
  val_per_task = 16, -- held-out instances per task in the before/after table
  ckpt_steps = { 0 }, -- checkpoint steps; {0}: mtt.train.checkpoint_steps(steps) (1, 2, 5, 10, 20, 50, ...)
  device = 'cpu', precision = 'f32', -- mtt.device.setup: 'cuda' and 'bf16' where a GPU is present
  progress = true,
}
-- --quick: the tiny base model (32 positions: 'exemplars' prompts, which have no definition)
M.QUICK = { base = 'runs/pretrain-quick/model', run_dir = 'runs/instruct-quick', format = 'exemplars',
  steps = 60, batch_size = 16, lr = 3e-3, min_lr = 3e-4, warmup = 5, eval_every = 20, eval_batches = 2,
  log_every = 10, val_per_task = 8, corpus_bytes = 100000 }


function M.run(cfg)
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
  local cap = cfg.cap > 0 and cfg.rate ~= 'uniform' and cfg.cap or nil -- cap = 0: no cap
  local mix = mtt.data.mixture { tasks = tasks, rate = cfg.rate, cap = cap, temperature = temperature, seed = cfg.seed }
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
    replay = replay, pack = cfg.pack, bucket = cfg.bucket, seed = cfg.seed }
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
  local ckpt_steps = cfg.ckpt_steps
  if #ckpt_steps == 0 or (#ckpt_steps == 1 and ckpt_steps[1] == 0) then ckpt_steps = mtt.train.checkpoint_steps(cfg.steps) end
  mtt.io.makedirs(cfg.run_dir)
  local res = mtt.train { model = model, data = data, init = cfg.base, run_dir = cfg.run_dir, steps = cfg.steps,
    batch_size = cfg.batch_size, lr = cfg.lr, min_lr = cfg.min_lr, warmup = cfg.warmup, schedule = 'cosine',
    weight_decay = cfg.weight_decay, betas = { 0.9, 0.95 }, clip = 1.0, eval_every = cfg.eval_every,
    eval_batches = cfg.eval_batches, log_every = cfg.log_every, seed = cfg.seed,
    ckpt_steps = ckpt_steps, keep_checkpoints = 0, device = cfg.device, precision = cfg.precision,
      progress = cfg.progress }

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
  model_dir_lib.save(model_dir, model, tok)
  print(string.format('tuned model: %s/{config.json, model.safetensors, tokenizer.json}', model_dir))
  print(string.format('done: %d steps, final training loss %s, %d s', res.step,
    res.loss and string.format('%.4f', res.loss) or '-', os.time() - t_start))
  return { model_dir = model_dir, run_dir = cfg.run_dir, before = before, after = after, loss = res.loss }
end

return setmetatable(M, { __call = function(_, cfg) return M.run(cfg) end })
