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
-- Batching: padded, length-bucketed batches of 16 (mtt.data.instruct; pack=true packs rows).
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
--   mtt run recipes/instruct.lua                 (from runs/pretrain/model; 18 minutes on 2 shared cores,
--                                                 61 tasks: mean held-out loss 6.28 -> 2.90, fell on 61 of 61;
--                                                 9 checkpoints, 437 MB)
--   mtt run recipes/instruct.lua --quick         (from runs/pretrain-quick/model, under a minute)
--   mtt run recipes/instruct.lua --set replay=0.25 --set run_dir=runs/instruct-replay
local mtt = require 'mtt'
local recipe = require 'mtt.recipe'

-- settings and their defaults: mtt.recipe.instruct.DEFAULTS (lua/mtt/recipe/instruct.lua)
local cfg = recipe.args('instruct', recipe.instruct.DEFAULTS, { quick = recipe.instruct.QUICK }, arg)
recipe.instruct(cfg)
