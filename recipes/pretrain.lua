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
-- and mtt.tokenizer.load('runs/pretrain/model/tokenizer.json').
-- The run folder also has config.json (training), metrics.jsonl and ckpt/.
--
--   mtt run recipes/pretrain.lua                 (about 15 minutes on 2 cores)
--   mtt run recipes/pretrain.lua --quick         (a tiny model, seconds; runs/pretrain-quick)
--   mtt run recipes/pretrain.lua --set steps=200 --set run_dir=runs/p200
local mtt = require 'mtt'

local cfg = {
  corpus = mtt.root .. '/build/data/corpus', run_dir = 'runs/pretrain',
  vocab_size = 4096, block_size = 128, n_layer = 4, n_embd = 256, n_head = 4, dropout = 0.0,
  steps = 800, batch_size = 16, lr = 1e-3, min_lr = 1e-4, warmup = 40, weight_decay = 0.1,
  eval_every = 100, eval_batches = 8, ckpt_every = 100, log_every = 10,
  val_fraction = 0.05, seed = 1337, threads = 0, -- 0: mtt's default thread count
  samples = 3, sample_tokens = 60, temperature = 0.8, top_k = 40,
  max_corpus_bytes = 0, -- 0: all of it; otherwise the first N bytes of each file (quick runs)
}
-- --quick: the same pipeline at toy size, for tests and a first look
local QUICK = { run_dir = 'runs/pretrain-quick', vocab_size = 512, block_size = 32, n_layer = 2, n_embd = 64,
  n_head = 4, steps = 300, batch_size = 16, lr = 1e-2, min_lr = 1e-3, warmup = 10, eval_every = 100,
  eval_batches = 4, ckpt_every = 100, log_every = 50, samples = 2, sample_tokens = 20, max_corpus_bytes = 200000 }

-- ---- arguments: --quick, --set key=value (typed as the default; unknown keys are errors) ----
do
  local args, i = arg or {}, 1
  local sets = {}
  while args[i] do
    local a = args[i]
    if a == '--quick' then
      for k, v in pairs(QUICK) do cfg[k] = v end
      i = i + 1
    elseif a == '--set' or a:match('^%-%-set=') then
      local kv = a == '--set' and args[i + 1] or a:sub(7)
      i = i + (a == '--set' and 2 or 1)
      local k, v = tostring(kv):match('^([%w_]+)=(.*)$')
      if not k then error('pretrain: --set needs key=value, got ' .. tostring(kv), 0) end
      sets[#sets + 1] = { k, v }
    else
      error('pretrain: unknown argument ' .. a .. ' (accepted: --quick, --set key=value)', 0)
    end
  end
  for _, kv in ipairs(sets) do -- after --quick, wherever it stood
    local k, v = kv[1], kv[2]
    if cfg[k] == nil then
      local keys = {}
      for name in pairs(cfg) do keys[#keys + 1] = name end
      table.sort(keys)
      error(string.format("pretrain: unknown setting '%s' (accepted: %s)", k, table.concat(keys, ', ')), 0)
    end
    if type(cfg[k]) == 'number' then
      cfg[k] = tonumber(v) or error(string.format("pretrain: setting '%s' needs a number, got '%s'", k, v), 0)
    else
      cfg[k] = v
    end
  end
end
if cfg.threads > 0 then mtt.threads(cfg.threads) end
local t_start = os.time()

-- ---- data ----
local FILES = { 'bible.txt', 'fortunes.txt', 'jargon.txt', 'wordnet.txt' }
local texts, n_bytes = {}, 0
for _, name in ipairs(FILES) do
  local path = cfg.corpus .. '/' .. name
  local f = io.open(path, 'rb')
  if not f then
    error(string.format('pretrain: %s is missing; build the corpus with ./build.sh build (or: luajit ' ..
      'tools/corpus/build_corpus.lua %s)', path, cfg.corpus), 0)
  end
  local text = f:read(cfg.max_corpus_bytes > 0 and cfg.max_corpus_bytes or '*a')
  f:close()
  for doc in (text .. '\n\n'):gmatch('(.-)\n\n') do
    if doc ~= '' then
      texts[#texts + 1] = doc
      n_bytes = n_bytes + #doc
    end
  end
end

mtt.io.makedirs(cfg.run_dir .. '/model')
local tok_path = cfg.run_dir .. '/tokenizer.json'
local tok
if mtt.io.stat(tok_path) then
  tok = mtt.tokenizer.load(tok_path)
  print(string.format('tokenizer: loaded %s (vocabulary %d)', tok_path, tok.vocab_size))
else
  local t0 = os.clock()
  tok = mtt.tokenizer.train { texts = texts, vocab_size = cfg.vocab_size }
  tok:save(tok_path)
  print(string.format('tokenizer: trained on %d documents (%.1f MB) in %.1f s, vocabulary %d', #texts, n_bytes / 1e6,
    os.clock() - t0, tok.vocab_size))
end

local corpus = mtt.data.corpus { texts = texts, tokenizer = tok, block_size = cfg.block_size, seed = cfg.seed,
  val_fraction = cfg.val_fraction }
print(string.format('corpus: %d documents, %.1f MB, %d tokens (%.2f bytes a token); %d training and %d validation ' ..
  'blocks of %d', #texts, n_bytes / 1e6, corpus.n_tokens, n_bytes / corpus.n_tokens, corpus:num_blocks('train'),
  corpus:num_blocks('val'), cfg.block_size))

-- ---- model ----
mtt.manual_seed(cfg.seed)
local model = mtt.nn.GPT { vocab_size = tok.vocab_size, n_positions = cfg.block_size, n_embd = cfg.n_embd,
  n_layer = cfg.n_layer, n_head = cfg.n_head, resid_pdrop = cfg.dropout, embd_pdrop = cfg.dropout,
  attn_pdrop = cfg.dropout, bos_token_id = tok.eot_id, eos_token_id = tok.eot_id }
print(string.format('model: GPT-2 layout, %d layers, width %d, %d heads, %d positions, vocabulary %d: %.2fM ' ..
  'parameters; %d threads', cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size, tok.vocab_size,
  model:num_parameters() / 1e6, mtt.threads()))

-- ---- training ----
local res = mtt.train { model = model, data = corpus, run_dir = cfg.run_dir, steps = cfg.steps,
  batch_size = cfg.batch_size, lr = cfg.lr, min_lr = cfg.min_lr, warmup = cfg.warmup, schedule = 'cosine',
  weight_decay = cfg.weight_decay, betas = { 0.9, 0.95 }, clip = 1.0, eval_every = cfg.eval_every,
  eval_batches = cfg.eval_batches, ckpt_every = cfg.ckpt_every, log_every = cfg.log_every, seed = cfg.seed }

-- ---- evaluation: the whole validation split, in bits per byte ----
-- bytes of text behind each token (<|endoftext|> stands for no text)
local token_bytes = {}
for id = 0, tok.vocab_size - 1 do token_bytes[id] = tok:is_special(id) and 0 or #tok:decode({ id }) end
local ffi = require 'ffi'
local nats, n_targets, n_text_bytes = 0, 0, 0
model:eval()
mtt.no_grad(function()
  for idx, targets in corpus:iter('val', cfg.batch_size) do
    local _, loss = model(idx, targets)
    local n = targets:numel()
    nats = nats + loss:item() * n
    n_targets = n_targets + n
    local p = ffi.cast('int32_t *', targets:data_ptr())
    for i = 0, n - 1 do n_text_bytes = n_text_bytes + token_bytes[p[i]] end
  end
end)
local bits_per_token = nats / n_targets / math.log(2)
local bpb = nats / math.log(2) / n_text_bytes
local unigram_bpb = corpus:unigram_bits_per_token('val') * n_targets / n_text_bytes
print(string.format('validation (%d tokens, %d bytes): loss %.4f nats/token = %.3f bits/token = %.3f bits per byte; ' ..
  'unigram baseline %.3f bits per byte', n_targets, n_text_bytes, nats / n_targets, bits_per_token, bpb, unigram_bpb))

-- ---- the base model: config, weights, tokenizer ----
local model_dir = cfg.run_dir .. '/model'
local mcfg = {}
for k, v in pairs(model.config) do mcfg[k] = v end
mcfg.model_type, mcfg.architectures = 'gpt2', { 'GPT2LMHeadModel' }
mcfg.bos_token_id, mcfg.eos_token_id = tok.eot_id, tok.eot_id
assert(mtt.train.metrics.write_file(model_dir .. '/config.json', mtt.train.metrics.encode(mcfg, '  ') .. '\n'))
mtt.io.save_safetensors(model_dir .. '/model.safetensors', model:state_dict({ tied = false }), { format = 'pt' })
tok:save(model_dir .. '/tokenizer.json')
print(string.format('base model: %s/{config.json, model.safetensors, tokenizer.json}', model_dir))

-- ---- samples ----
local prompts = { 'In the beginning', 'A hacker is', 'love (noun):', 'The computer', 'And the LORD said' }
local gen = mtt.Generator(cfg.seed)
for i = 1, math.min(cfg.samples, #prompts) do
  local ids = model:generate(tok:encode(prompts[i]), { max_new_tokens = cfg.sample_tokens, temperature = cfg.temperature,
    top_k = cfg.top_k, stop = { tok.eot_id }, generator = gen })
  print(string.format('sample %d: %s%s', i, prompts[i], tok:decode(ids):gsub('\n', ' / ')))
end
print(string.format('done: %d steps, final training loss %s, %s', res.step, res.loss and string.format('%.4f', res.loss)
  or '-', os.time() - t_start .. ' s'))
