-- recipes/pretrain.lua: pre-train a small GPT on the default corpus, on a laptop's CPU.
--
-- Data: the default corpus (tools/corpus/README.md: King James Bible, fortune cookies, the
-- Jargon File, WordNet glosses; about 10 MB, built by ./build.sh), split into documents at
-- blank lines, each followed by <|endoftext|>. Tokenizer: byte-level BPE, vocabulary 4096,
-- trained on the corpus (or loaded if this run already trained it). Model: GPT-2 layout, 4
-- layers, width 256, 4 heads, 128 positions (about 4.2M parameters, the embedding tied to the
-- output head). Training: AdamW (0.9, 0.95), weight decay 0.1 on 2-D weights, lr 1e-3 with
-- 40 warm-up steps and cosine decay to 1e-4 over 800 steps of 16 x 128 tokens (1.6M tokens,
-- about half an epoch), clipping at 1, evaluated every 100 steps; resumes from its last
-- checkpoint if stopped (run the same command again). Evaluation: the loss over the
-- whole validation split (5% of the blocks) in bits per byte of text, next to the unigram
-- baseline (the entropy of the validation text's token frequencies, in bits per byte); a few
-- sampled continuations.
--
-- Output, the base model of the instruction-tuning recipes: runs/pretrain/model/ with
-- config.json (GPT2Config fields), model.safetensors (Hugging Face GPT2LMHeadModel names) and
-- tokenizer.json (Hugging Face format); load it with
--   mtt.nn.GPT('runs/pretrain/model/config.json') + mtt.io.load_safetensors + load_state_dict
-- and mtt.tokenizer.load('runs/pretrain/model/tokenizer.json'). Settings and their defaults:
-- mtt.recipe.pretrain.DEFAULTS (lua/mtt/recipe/pretrain.lua).
-- The run folder also has config.json (training), metrics.jsonl and ckpt/.
--
--   mtt run recipes/pretrain.lua                 (about 15 minutes on 2 cores)
--   mtt run recipes/pretrain.lua --quick         (a tiny model, seconds; runs/pretrain-quick)
--   mtt run recipes/pretrain.lua --set steps=200 --set run_dir=runs/p200
local mtt = require 'mtt'
local recipe = require 'mtt.recipe'

local cfg = recipe.args('pretrain', recipe.pretrain.DEFAULTS, { quick = recipe.pretrain.QUICK }, arg)
recipe.pretrain(cfg)
