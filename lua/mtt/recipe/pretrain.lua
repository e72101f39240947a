-- The pre-training phase: a tokenizer trained on the default corpus, a small GPT trained on it
-- with mtt.train, the validation loss in bits per byte next to the unigram baseline, and the
-- base model written as a model folder (mtt.recipe.model_dir) for the instruction-tuning phase.
--
--   local out = mtt.recipe.pretrain(cfg)   -- cfg: the settings of recipes/pretrain.lua
--   out.model_dir, out.bits_per_byte, out.unigram_bits_per_byte, out.loss
--
-- M.texts(cfg) and M.corpus(cfg, tok) give the same document stream to the replay of
-- instruction tuning, so replayed text is pre-training text, tokenized the same way.
local mtt = require 'mtt'
local ffi = require 'ffi'
local model_dir = require 'mtt.recipe.model_dir'

local M = {}

M.DEFAULTS = {
  corpus = mtt.root .. '/build/data/corpus', run_dir = 'runs/pretrain',
  vocab_size = 4096, block_size = 128, n_layer = 4, n_embd = 256, n_head = 4, dropout = 0.0,
  steps = 800, batch_size = 16, lr = 1e-3, min_lr = 1e-4, warmup = 40, weight_decay = 0.1,
  eval_every = 100, eval_batches = 8, ckpt_every = 100, log_every = 10,
  val_fraction = 0.05, seed = 1337, threads = 0, -- 0: mtt's default thread count
  samples = 3, sample_tokens = 60, temperature = 0.8, top_k = 40,
  max_corpus_bytes = 0, -- 0: all of it; otherwise the first N bytes of each file (quick runs)
  device = 'cpu', precision = 'f32', -- mtt.device.setup: 'cuda' and 'bf16' where a GPU is present
}
-- --quick: the same pipeline at toy size, for tests and a first look
M.QUICK = { run_dir = 'runs/pretrain-quick', vocab_size = 512, block_size = 32, n_layer = 2, n_embd = 64,
  n_head = 4, steps = 300, batch_size = 16, lr = 1e-2, min_lr = 1e-3, warmup = 10, eval_every = 100,
  eval_batches = 4, ckpt_every = 100, log_every = 50, samples = 2, sample_tokens = 20, max_corpus_bytes = 200000 }

M.FILES = { 'bible.txt', 'fortunes.txt', 'jargon.txt', 'wordnet.txt' }

-- The corpus files split into documents at blank lines -> texts, total bytes.
function M.texts(cfg)
  local texts, n_bytes = {}, 0
  for _, name in ipairs(M.FILES) do
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
  return texts, n_bytes
end

function M.corpus(cfg, tok, texts)
  return mtt.data.corpus { texts = texts or M.texts(cfg), tokenizer = tok, block_size = cfg.block_size,
    seed = cfg.seed, val_fraction = cfg.val_fraction }
end

local function tokenizer(cfg, texts, n_bytes)
  local path = cfg.run_dir .. '/tokenizer.json'
  if mtt.io.stat(path) then
    local tok = mtt.tokenizer.load(path)
    print(string.format('tokenizer: loaded %s (vocabulary %d)', path, tok.vocab_size))
    return tok
  end
  local t0 = os.clock()
  local tok = mtt.tokenizer.train { texts = texts, vocab_size = cfg.vocab_size }
  tok:save(path)
  print(string.format('tokenizer: trained on %d documents (%.1f MB) in %.1f s, vocabulary %d', #texts, n_bytes / 1e6,
    os.clock() - t0, tok.vocab_size))
  return tok
end

-- The whole validation split in bits per byte of text (<|endoftext|> stands for no text).
local function validation_bits(cfg, model, tok, corpus)
  local token_bytes = {}
  for id = 0, tok.vocab_size - 1 do token_bytes[id] = tok:is_special(id) and 0 or #tok:decode({ id }) end
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
  local bpb = nats / math.log(2) / n_text_bytes
  local unigram_bpb = corpus:unigram_bits_per_token('val') * n_targets / n_text_bytes
  print(string.format('validation (%d tokens, %d bytes): loss %.4f nats/token = %.3f bits/token = %.3f bits per ' ..
    'byte; unigram baseline %.3f bits per byte', n_targets, n_text_bytes, nats / n_targets,
    nats / n_targets / math.log(2), bpb, unigram_bpb))
  return bpb, unigram_bpb
end

local function samples(cfg, model, tok)
  local prompts = { 'In the beginning', 'A hacker is', 'love (noun):', 'The computer', 'And the LORD said' }
  local gen = mtt.Generator(cfg.seed)
  for i = 1, math.min(cfg.samples, #prompts) do
    local ids = model:generate(tok:encode(prompts[i]), { max_new_tokens = cfg.sample_tokens,
      temperature = cfg.temperature, top_k = cfg.top_k, stop = { tok.eot_id }, generator = gen })
    print(string.format('sample %d: %s%s', i, prompts[i], tok:decode(ids):gsub('\n', ' / ')))
  end
end

function M.run(cfg)
  local t_start = os.time()
  if cfg.threads and cfg.threads > 0 then mtt.threads(cfg.threads) end
  local texts, n_bytes = M.texts(cfg)
  mtt.io.makedirs(cfg.run_dir .. '/model')
  local tok = tokenizer(cfg, texts, n_bytes)
  local corpus = M.corpus(cfg, tok, texts)
  print(string.format('corpus: %d documents, %.1f MB, %d tokens (%.2f bytes a token); %d training and %d ' ..
    'validation blocks of %d', #texts, n_bytes / 1e6, corpus.n_tokens, n_bytes / corpus.n_tokens,
    corpus:num_blocks('train'), corpus:num_blocks('val'), cfg.block_size))

  mtt.manual_seed(cfg.seed)
  local model = mtt.nn.GPT { vocab_size = tok.vocab_size, n_positions = cfg.block_size, n_embd = cfg.n_embd,
    n_layer = cfg.n_layer, n_head = cfg.n_head, resid_pdrop = cfg.dropout, embd_pdrop = cfg.dropout,
    attn_pdrop = cfg.dropout, bos_token_id = tok.eot_id, eos_token_id = tok.eot_id }
  print(string.format('model: GPT-2 layout, %d layers, width %d, %d heads, %d positions, vocabulary %d: %.2fM ' ..
    'parameters; %d threads', cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size, tok.vocab_size,
    model:num_parameters() / 1e6, mtt.threads()))

  local res = mtt.train { model = model, data = corpus, run_dir = cfg.run_dir, steps = cfg.steps,
    batch_size = cfg.batch_size, lr = cfg.lr, min_lr = cfg.min_lr, warmup = cfg.warmup, schedule = 'cosine',
    weight_decay = cfg.weight_decay, betas = { 0.9, 0.95 }, clip = 1.0, eval_every = cfg.eval_every,
    eval_batches = cfg.eval_batches, ckpt_every = cfg.ckpt_every, log_every = cfg.log_every, seed = cfg.seed,
    progress = cfg.progress ~= false, device = cfg.device, precision = cfg.precision }

  local bpb, unigram_bpb = validation_bits(cfg, model, tok, corpus)
  local dir = cfg.run_dir .. '/model'
  model_dir.save(dir, model, tok)
  print(string.format('base model: %s/{config.json, model.safetensors, tokenizer.json}', dir))
  samples(cfg, model, tok)
  print(string.format('done: %d steps, final training loss %s, %s', res.step, res.loss and
    string.format('%.4f', res.loss) or '-', os.time() - t_start .. ' s'))
  return { model_dir = dir, bits_per_byte = bpb, unigram_bits_per_byte = unigram_bpb, loss = res.loss,
    run_dir = cfg.run_dir }
end

return setmetatable(M, { __call = function(_, cfg) return M.run(cfg) end })
