-- The study "Multi-Task Transfer Matters During Instruction-Tuning" (Mueller, Dredze, Andrews
-- 2024) as one plan of phases and evaluations, shared by recipes/paper/*.lua and
-- recipes/quickstart.lua.
--
-- Phases (each run once, then reused: a finished phase leaves a model folder, and an evaluation
-- unit already in a run's metrics.jsonl is not run again):
--   pretrain                 a small GPT on the default corpus (mtt.recipe.pretrain)
--   instruct/<method>        instruction tuning on the training tasks with a sampling method
--                            ('proportional' is the main run; 'uniform', 'temperature' and
--                            'reverse' (reverse annealing) for claim 3)
--   instruct/replay-<r>      the main run with pre-training replay at ratio r (claim 4)
-- Evaluations on the held-out tasks (tasks/splits/default/test_tasks.txt: categories never
-- seen in training):
--   full   ICL (k in icl_k, 'exemplars') and transfer (n in transfer_n, both encodings) on the
--          base model and at the end of the main run (claims 1, 2)
--   track  ICL at k = track_k and transfer at n = track_n ('id') on every checkpoint of the
--          main and replay runs (claims 4, 5)
-- Scores are losses (mean target NLL per token; lower is better) unless a table says otherwise.
local mtt = require 'mtt'
local recipe = require 'mtt.recipe'
local io_ = require 'mtt.io'

local M = {}

-- Every setting of the study, flat so that `--set key=value` reaches each one.
M.DEFAULTS = {
  dir = 'runs/paper', seeds = { 1 }, threads = 0,
  -- pre-training (mtt.recipe.pretrain settings prefixed pt_)
  pt_vocab_size = 4096, pt_block_size = 128, pt_n_layer = 4, pt_n_embd = 256, pt_n_head = 4,
  pt_steps = 800, pt_batch_size = 16, pt_lr = 1e-3, pt_max_corpus_bytes = 0,
  -- instruction tuning
  it_steps = 600, it_batch_size = 16, it_lr = 3e-4, it_format = 'tk', it_k = 2, it_cap = 3000,
  it_temperature = 2.0, it_reverse_to = 10.0, it_ckpt_steps = { 10, 25, 50, 100, 200, 400 }, it_eval_every = 50,
  early_step = 50, replay_ratios = { 0.1, 0.25 },
  methods = { 'uniform', 'proportional', 'temperature', 'reverse' },
  -- evaluation
  heldout = mtt.root .. '/tasks/splits/default/test_tasks.txt',
  train_split = mtt.root .. '/tasks/splits/default/train_tasks.txt', tasks_dir = mtt.root .. '/build/data/tasks', max_heldout = 0, eval_instances = 40,
  icl_k = { 0, 2 }, transfer_n = { 5, 10, 20, 40 }, transfer_formats = { 'id', 'exemplars' },
  transfer_steps = 30, transfer_lr = 1e-3, track_k = 2, track_n = 20,
  transfer_scores = { 'loss', 'acc', 'generate' }, -- 'generate': exact match and ROUGE-L by greedy decoding
  samples = false, -- true: per-sample logs (prompt, target, output, scores) in <run>/samples/*.jsonl
}

-- The quickstart: the same plan, reduced to fit 30 minutes on 2 CPU cores.
M.QUICK = {
  dir = 'runs/quickstart',
  pt_vocab_size = 2048, pt_block_size = 128, pt_n_layer = 2, pt_n_embd = 128, pt_n_head = 4, pt_steps = 400,
  pt_batch_size = 16, pt_lr = 2e-3, pt_max_corpus_bytes = 3000000,
  it_steps = 300, it_ckpt_steps = { 10, 25, 50, 100, 200 }, early_step = 25, replay_ratios = { 0.25 },
  methods = { 'uniform', 'proportional', 'reverse' }, max_heldout = 0, eval_instances = 24,
  icl_k = { 0, 2 }, transfer_n = { 4, 16 }, transfer_steps = 20, track_n = 16, transfer_scores = { 'loss', 'acc' },
}

local function say(fmt, ...) print(string.format(fmt, ...)) end

-- ---- tasks ----
function M.tasks(cfg)
  if cfg._tasks then return cfg._tasks end
  local opts = { tasks_dir = cfg.tasks_dir }
  local train = mtt.tasks.load(cfg.train_split, opts)
  local heldout = mtt.tasks.load(cfg.heldout, opts)
  if cfg.max_heldout > 0 then
    for i = #heldout, cfg.max_heldout + 1, -1 do heldout[i] = nil end
  end
  cfg._tasks = { train = train, heldout = heldout }
  return cfg._tasks
end

-- ---- phases ----
function M.pretrain(cfg)
  local pcfg = {}
  for k, v in pairs(recipe.pretrain.DEFAULTS) do pcfg[k] = v end
  for k, v in pairs(cfg) do
    local name = type(k) == 'string' and k:match('^pt_(.+)$')
    if name then pcfg[name] = v end
  end
  pcfg.run_dir, pcfg.seed, pcfg.samples = cfg.dir .. '/pretrain', cfg.seeds[1] * 1000 + 337, 0
  pcfg.warmup = math.min(pcfg.warmup, math.floor(pcfg.steps / 10)) -- short runs (tests) warm up less
  pcfg.eval_every = math.min(pcfg.eval_every, pcfg.steps)
  pcfg.progress = true
  local dir = pcfg.run_dir .. '/model'
  if not recipe.model_dir.exists(dir) then
    say('== pre-training (%s)', pcfg.run_dir)
    recipe.pretrain(pcfg)
  end
  return { run_dir = pcfg.run_dir, model_dir = dir, cfg = pcfg }
end

-- The instruction-tuning run of a sampling method (and replay ratio).
function M.instruct(cfg, method, replay_ratio)
  local base = M.pretrain(cfg)
  local name = (replay_ratio or 0) > 0 and string.format('replay-%g', replay_ratio) or method
  local run_dir = cfg.dir .. '/instruct/' .. name
  local icfg = {}
  for k, v in pairs(recipe.instruct.DEFAULTS) do icfg[k] = v end
  local set = {
    base = base.model_dir, run_dir = run_dir, steps = cfg.it_steps, batch_size = cfg.it_batch_size, lr = cfg.it_lr,
    min_lr = cfg.it_lr / 10, format = cfg.it_format, k = cfg.it_k, cap = cfg.it_cap, seed = cfg.seeds[1],
    ckpt_steps = cfg.it_ckpt_steps, replay = replay_ratio or 0, corpus = base.cfg.corpus,
    split = cfg.train_split, tasks_dir = cfg.tasks_dir, eval_every = cfg.it_eval_every, threads = 0,
    rate = method == 'uniform' and 'uniform' or 'proportional',
    temperature = method == 'temperature' and cfg.it_temperature or 1,
    temperature_end = method == 'reverse' and cfg.it_reverse_to or 0,
  }
  for k, v in pairs(set) do icfg[k] = v end
  icfg.warmup = math.min(icfg.warmup, math.floor(icfg.steps / 10))
  if not recipe.model_dir.exists(run_dir .. '/model') then
    say('== instruction tuning: %s (%s)', name, run_dir)
    recipe.instruct(icfg)
  end
  return { run_dir = run_dir, model_dir = run_dir .. '/model', base = base, name = name }
end

-- ---- evaluations ----
local function icl_settings(cfg, k)
  return { tasks = M.tasks(cfg).heldout, k = k, format = 'exemplars', max_instances = cfg.eval_instances,
    scores = { 'loss' } }
end

local function transfer_settings(cfg, n, format)
  return { tasks = M.tasks(cfg).heldout, n = n, format = format, steps = cfg.transfer_steps, lr = cfg.transfer_lr,
    max_instances = cfg.eval_instances, scores = cfg.transfer_scores }
end

-- The full evaluation of a model folder's run at `step` (0: the base model).
function M.evaluate_full(cfg, run, step)
  local rows = {}
  for i, format in ipairs(cfg.transfer_formats) do
    local r = recipe.evaluate { run_dir = run.run_dir, base = run.base_dir, steps = { step }, seeds = cfg.seeds,
      icl = i == 1 and icl_settings(cfg, cfg.icl_k) or nil, transfer = transfer_settings(cfg, cfg.transfer_n, format),
      label = 'full', samples = cfg.samples }
    for _, row in ipairs(r) do rows[#rows + 1] = row end
  end
  return rows
end

-- The tracking evaluation on every checkpoint (and step 0) of an instruction-tuning run.
function M.evaluate_track(cfg, run)
  return recipe.evaluate { run_dir = run.run_dir, base = run.base.model_dir, steps = 'checkpoints', seeds = cfg.seeds,
    icl = icl_settings(cfg, { cfg.track_k }), transfer = transfer_settings(cfg, { cfg.track_n }, 'id'),
    label = 'track', samples = cfg.samples }
end

-- ICL alone at the end of a run (the sampling comparison): the same settings as the tracking
-- evaluation's ICL, so rows already computed there are reused.
function M.evaluate_icl_end(cfg, run)
  return recipe.evaluate { run_dir = run.run_dir, steps = 'end', seeds = cfg.seeds,
    icl = icl_settings(cfg, { cfg.track_k }), label = 'track', samples = cfg.samples }
end

-- The base model's full evaluation lives in the pre-training run folder (at its last step).
function M.base_rows(cfg)
  local base = M.pretrain(cfg)
  local ckpts = require('mtt.checkpoint').list(base.run_dir .. '/ckpt')
  local last = ckpts[#ckpts].step
  return M.evaluate_full(cfg, { run_dir = base.run_dir }, last)
end

function M.tuned_rows(cfg)
  local run = M.instruct(cfg, 'proportional')
  local ckpts = require('mtt.checkpoint').list(run.run_dir .. '/ckpt')
  return M.evaluate_full(cfg, { run_dir = run.run_dir }, ckpts[#ckpts].step)
end

function M.settings(cfg, args)
  local defaults = {}
  for k, v in pairs(M.DEFAULTS) do defaults[k] = v end
  local c = recipe.args(args.name, defaults, { quick = M.QUICK }, args.argv)
  if c.threads > 0 then mtt.threads(c.threads) end
  return c
end


-- study.main{name =, claims = {...} | nil (all), argv = arg, report = 'subfolder' | nil, preset = 'quick' | nil}:
-- the body of every study recipe: settings, the claims' phases and evaluations, the report,
-- and the verdict lines printed at the end. Returns the verdicts and the report folder.
function M.main(args)
  local claims = require 'mtt.recipe.claims'
  local defaults = {}
  for k, v in pairs(M.DEFAULTS) do defaults[k] = v end
  if args.preset == 'quick' then for k, v in pairs(M.QUICK) do defaults[k] = v end end
  local cfg = recipe.args(args.name, defaults, { quick = M.QUICK }, args.argv)
  if cfg.threads > 0 then mtt.threads(cfg.threads) end
  local t0 = os.time()
  local dir = cfg.dir .. '/report' .. (args.report and ('/' .. args.report) or '')
  local report = mtt.report.new(dir)
  report:text(string.format('Run folder: %s. Settings: %s', cfg.dir, M.describe(cfg)))
  local verdicts = claims.run(cfg, args.claims, report)
  report:write()
  print(string.format('\nreport: %s/report.md (%d s in all)', dir, os.time() - t0))
  for _, v in ipairs(verdicts) do print('verdict: ' .. v) end
  return verdicts, dir
end

-- The settings as one line (lists joined), for the report's header.
function M.describe(cfg)
  local keys = {}
  for k in pairs(M.DEFAULTS) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = cfg[k]
    if type(v) == 'table' then v = table.concat(v, ',') end
    parts[#parts + 1] = k .. '=' .. tostring(v)
  end
  return table.concat(parts, ' ')
end

return M
