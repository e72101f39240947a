-- Evaluations scheduled on a run's checkpoints, with results in the run's metrics.jsonl.
--
--   mtt.recipe.evaluate{run_dir = 'runs/paper/instruct', steps = 'checkpoints' | 'end' | {0, 20, 200},
--     base = 'runs/paper/pretrain/model',        -- the weights of step 0 (before this phase)
--     icl = {tasks = heldout, k = {0, 2}, format = 'exemplars', max_instances = 40},
--     transfer = {tasks = heldout, n = {5, 20}, format = 'id', steps = 20, lr = 1e-3},
--     seeds = {1, 2}, tokenizer = tok, model = model}
--
-- Each evaluation unit (kind, step, seed, settings) appends its rows to metrics.jsonl at once:
--   {"step": 200, "kind": "icl", "task": ..., "k": 2, "seed": 1, "metric": "loss", "value": ...,
--    "count": 40, "eval": "<settings tag>", "format": "exemplars"}
--   {"step": 200, "kind": "transfer", "task": ..., "n": 20, "seed": 1, "metric": ..., ...}
-- and a unit whose rows are already there is not run again: a killed evaluation resumes, and a
-- run can be evaluated later (new steps, seeds or settings) from its checkpoints without
-- retraining. The settings tag is a hash of everything that changes the numbers, so changed
-- settings are evaluated anew instead of being mixed with old rows.
local metrics = require 'mtt.train.metrics'
local checkpoint = require 'mtt.checkpoint'
local options = require 'mtt.options'
local model_dir = require 'mtt.recipe.model_dir'

local M = {}

local SPEC = 'run_dir:string steps:string|table base:string icl:table transfer:table seeds:table ' ..
  'model:table tokenizer:table|cdata|userdata label:string samples:boolean progress:boolean'

local function fail(msg) error('mtt.recipe.evaluate: ' .. msg, 0) end

-- A short stable hash (FNV-1a, 32 bits) of the settings that change the numbers.
local function tag(kind, settings)
  local names = {}
  for _, t in ipairs(settings.tasks) do names[#names + 1] = t.name end
  local parts = { kind, table.concat(names, ',') }
  local keys = {}
  for k in pairs(settings) do if k ~= 'tasks' then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. '=' .. metrics.encode(settings[k]) end
  local s, h = table.concat(parts, ';'), 2166136261
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i))
    h = bit.tobit(h * 16777619 % 4294967296)
  end
  return string.format('%08x', h % 4294967296)
end
M.tag = tag

-- The steps to evaluate: a list, 'end' (the last checkpoint), or 'checkpoints' (every one,
-- plus step 0 when a base model is given).
local function resolve_steps(o)
  local ckpts = checkpoint.list(o.run_dir .. '/ckpt')
  if type(o.steps) == 'table' then return o.steps end
  if o.steps == 'end' then
    if #ckpts == 0 then fail(o.run_dir .. '/ckpt has no checkpoint to evaluate') end
    return { ckpts[#ckpts].step }
  elseif o.steps == 'checkpoints' then
    local list = o.base and { 0 } or {}
    for _, c in ipairs(ckpts) do list[#list + 1] = c.step end
    return list
  end
  fail("steps must be a list of steps, 'end' or 'checkpoints', got '" .. tostring(o.steps) .. "'")
end

-- Loads the weights of `step` into model: step 0 is the base model folder, other steps the
-- run's checkpoint (the optimizer's moments in it are skipped).
local function load_weights(o, model, step)
  if step == 0 then
    if not o.base then fail('step 0 needs base = <model folder>') end
    local sd = require('mtt.io').load_safetensors(o.base .. '/model.safetensors')
    model:load_state_dict(sd)
    return o.base
  end
  local path = checkpoint.path(o.run_dir .. '/ckpt', step)
  if not require('mtt.io').stat(path) then
    local have = {}
    for _, c in ipairs(checkpoint.list(o.run_dir .. '/ckpt')) do have[#have + 1] = c.step end
    fail(string.format('%s: no checkpoint of step %d (have: %s)', o.run_dir, step, table.concat(have, ', ')))
  end
  model:load_state_dict(require('mtt.train').model_state(checkpoint.load(path)))
  return path
end

local function done_units(rows)
  local done = {}
  for _, r in ipairs(rows) do
    if r.kind and r.eval then done[string.format('%s|%s|%s|%s', r.kind, r.step, r.seed, r.eval)] = true end
  end
  return done
end

-- Runs the evaluations; returns every evaluation row of the run folder for these settings
-- (old and new).
function M.run(opts)
  local o = options.check('mtt.recipe.evaluate', opts, SPEC)
  if not o.run_dir then fail('run_dir is required') end
  if not (o.icl or o.transfer) then fail('nothing to evaluate: give icl = {...} and/or transfer = {...}') end
  local eval = require 'mtt.eval'
  local model, tok = o.model, o.tokenizer
  if not model then
    local dir = o.base or (o.run_dir .. '/model')
    model, tok = model_dir.load(dir)
    tok = o.tokenizer or tok
  end
  if not tok then fail('tokenizer is required when model is given') end
  local seeds = o.seeds or { 1 }
  local steps = resolve_steps(o)
  local path = o.run_dir .. '/metrics.jsonl'
  local done = done_units(metrics.read(path))
  local kinds = {}
  if o.icl then kinds[#kinds + 1] = { 'icl', o.icl } end
  if o.transfer then kinds[#kinds + 1] = { 'transfer', o.transfer } end
  local tags = {}
  for _, kd in ipairs(kinds) do
    if not kd[2].tasks or #kd[2].tasks == 0 then fail(kd[1] .. '.tasks must be a non-empty list of tasks') end
    tags[kd[1]] = tag(kd[1], kd[2])
  end

  local loaded_step
  for _, step in ipairs(steps) do
    for _, seed in ipairs(seeds) do
      for _, kd in ipairs(kinds) do
        local kind, settings = kd[1], kd[2]
        local key = string.format('%s|%s|%s|%s', kind, step, seed, tags[kind])
        if not done[key] then
          if loaded_step ~= step then
            load_weights(o, model, step)
            loaded_step = step
          end
          local args = { model = model, tokenizer = tok, seed = seed }
          for k, v in pairs(settings) do args[k] = v end
          if o.samples then
            args.samples = string.format('%s/samples/%s-%s-step%d-seed%d.jsonl', o.run_dir, kind, tags[kind], step, seed)
            require('mtt.io').makedirs(o.run_dir .. '/samples')
          end
          local t0 = os.clock()
          local rows = kind == 'icl' and eval.icl(args) or eval.transfer(args)
          local w = assert(metrics.writer(path))
          for _, r in ipairs(rows) do
            local rec = { step = step, kind = kind, eval = tags[kind], seed = seed, label = o.label,
              format = settings.format }
            for k, v in pairs(r) do
              if kind == 'icl' and k == 'n' then rec.count = v else rec[k] = v end
            end
            rec.step, rec.kind, rec.eval = step, kind, tags[kind]
            w.log(rec)
          end
          w.close()
          done[key] = true
          if o.progress ~= false then
            print(string.format('  %s eval of %s step %d seed %d: %d rows, %.1f s', kind, o.run_dir, step, seed,
              #rows, os.clock() - t0))
          end
        end
      end
    end
  end
  -- every evaluation row for these settings
  local out = {}
  local wanted = {}
  for kind, t in pairs(tags) do wanted[kind .. '|' .. t] = true end
  for _, r in ipairs(metrics.read(path)) do
    if r.kind and wanted[r.kind .. '|' .. tostring(r.eval)] then out[#out + 1] = r end
  end
  return out
end

return setmetatable(M, { __call = function(_, opts) return M.run(opts) end })
