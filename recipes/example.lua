-- recipes/example.lua: a small, complete mtt recipe.
--
-- Task: reverse a sequence of 8 digits. An example is "d1 ... d8 | d8 ... d1"; the model reads
-- the prompt (the digits and the separator) and the loss covers the answer tokens only, as in
-- instruction tuning. Model: a 2-layer pre-LN transformer (width 64, 4 heads, causal
-- attention, GELU MLP, tied embeddings). Training: AdamW, linear warm-up then cosine decay,
-- gradient clipping at 1. Evaluation: greedy decoding of held-out prompts, exact match.
--
--   mtt run recipes/example.lua [steps]        (default 400 steps; well under a minute)
local mtt = require 'mtt'
local F = mtt.F

local cfg = {
  digits = 10, len = 8,              -- tokens 0-9 are digits, 10 is the separator
  width = 64, heads = 4, layers = 2,
  batch = 32, steps = tonumber(arg and arg[1]) or 400,
  lr = 3e-3, warmup = 40, weight_decay = 0.01, clip = 1.0,
  seed = 1234, log_every = 50, eval_size = 200,
}
local SEP = cfg.digits
local V, T = cfg.digits + 1, 2 * cfg.len + 1

mtt.manual_seed(cfg.seed)
local data_gen = mtt.Generator(cfg.seed + 1)   -- training examples
local eval_gen = mtt.Generator(cfg.seed + 2)   -- held-out examples, never trained on

-- ---- data ----
-- n examples as Lua tables of T tokens: digits, separator, digits reversed.
local function examples(n, gen)
  local digits = mtt.randint(0, cfg.digits, { n, cfg.len }, { generator = gen }):totable()
  local seqs = {}
  for i, d in ipairs(digits) do
    local s = {}
    for j = 1, cfg.len do s[j] = d[j] end
    s[cfg.len + 1] = SEP
    for j = 1, cfg.len do s[cfg.len + 1 + j] = d[cfg.len + 1 - j] end
    seqs[i] = s
  end
  return seqs
end

-- Next-token batch: inputs are tokens 1..T-1, targets tokens 2..T, and the loss mask keeps
-- the targets that are answer tokens.
local function batch(seqs)
  local inputs, targets, mask = {}, {}, {}
  for i, s in ipairs(seqs) do
    inputs[i], targets[i], mask[i] = {}, {}, {}
    for j = 1, T - 1 do
      inputs[i][j], targets[i][j] = s[j], s[j + 1]
      mask[i][j] = j >= cfg.len + 1 and 1 or 0
    end
  end
  return mtt.tensor(inputs, { dtype = 'i32' }), mtt.tensor(targets, { dtype = 'i32' }), mtt.tensor(mask)
end

-- ---- model ----
local C, H = cfg.width, cfg.heads
local params = {}
local function param(t) params[#params + 1] = t:requires_grad(); return t end
local function weight(rows, cols, scale) return param(mtt.randn(rows, cols) * scale) end

local model = {
  wte = weight(V, C, 0.1), wpe = weight(T, C, 0.1),
  blocks = {},
  lnf_w = param(mtt.ones(C)), lnf_b = param(mtt.zeros(C)),
}
for l = 1, cfg.layers do
  local proj_scale = 0.02 / math.sqrt(2 * cfg.layers)
  model.blocks[l] = {
    ln1_w = param(mtt.ones(C)), ln1_b = param(mtt.zeros(C)),
    w_qkv = weight(3 * C, C, 0.08), b_qkv = param(mtt.zeros(3 * C)),
    w_o = weight(C, C, proj_scale), b_o = param(mtt.zeros(C)),
    ln2_w = param(mtt.ones(C)), ln2_b = param(mtt.zeros(C)),
    w_fc = weight(4 * C, C, 0.08), b_fc = param(mtt.zeros(4 * C)),
    w_proj = weight(C, 4 * C, proj_scale), b_proj = param(mtt.zeros(C)),
  }
end

local function block(p, x)
  local B, L = x:size(1), x:size(2)
  local qkv = F.linear(F.layer_norm(x, p.ln1_w, p.ln1_b), p.w_qkv, p.b_qkv)
  qkv = qkv:view(B, L, 3, H, C / H):permute(3, 1, 4, 2, 5)  -- [3, B, H, L, C/H]
  local y = F.attention(qkv:select(1, 1), qkv:select(1, 2), qkv:select(1, 3), { causal = true })
  x = x + F.linear(y:transpose(2, 3):reshape(B, L, C), p.w_o, p.b_o)
  local h = F.linear(F.layer_norm(x, p.ln2_w, p.ln2_b), p.w_fc, p.b_fc):gelu()
  return x + F.linear(h, p.w_proj, p.b_proj)
end

-- tokens [B, L] (i32) -> logits [B, L, V]
local function forward(tokens)
  local L = tokens:size(2)
  local pos = mtt.arange(L, { dtype = 'i32' })
  local x = F.embedding(tokens, model.wte) + F.embedding(pos, model.wpe)
  for _, p in ipairs(model.blocks) do x = block(p, x) end
  return F.layer_norm(x, model.lnf_w, model.lnf_b):matmul(model.wte:t())
end

-- ---- evaluation: greedy decoding of held-out prompts ----
local held_out = examples(cfg.eval_size, eval_gen)
local function evaluate()
  return mtt.no_grad(function()
    local seqs = {}
    for i, s in ipairs(held_out) do seqs[i] = { unpack(s, 1, cfg.len + 1) } end
    for _ = 1, cfg.len do
      local logits = forward(mtt.tensor(seqs, { dtype = 'i32' }))
      local next_tok = logits:select(2, -1):argmax(-1):totable()
      for i, s in ipairs(seqs) do s[#s + 1] = next_tok[i] end
    end
    local exact, tokens = 0, 0
    for i, s in ipairs(seqs) do
      local all = true
      for j = cfg.len + 2, T do
        if s[j] == held_out[i][j] then tokens = tokens + 1 else all = false end
      end
      if all then exact = exact + 1 end
    end
    return exact / #seqs, tokens / (#seqs * cfg.len), seqs[1]
  end)
end

-- ---- training ----
-- The learning rate is a plain field of the optimizer: a schedule sets it before each step.
local opt = mtt.optim.AdamW(params, { lr = cfg.lr, weight_decay = cfg.weight_decay })
local function lr_at(step)
  if step <= cfg.warmup then return cfg.lr * step / cfg.warmup end
  local progress = (step - cfg.warmup) / math.max(1, cfg.steps - cfg.warmup)
  return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))) -- down to lr/10
end

local n_params = 0
for _, p in ipairs(params) do n_params = n_params + p:numel() end
print(string.format('reverse %d digits: %d-layer transformer, %d parameters, %d steps of batch %d, %d threads',
  cfg.len, cfg.layers, n_params, cfg.steps, cfg.batch, mtt.threads()))

local loss_sum, loss_n = 0, 0
local wall = os.time()
for step = 1, cfg.steps do
  local inputs, targets, mask = batch(examples(cfg.batch, data_gen))
  local loss = F.cross_entropy(forward(inputs), targets, { mask = mask })
  opt:zero_grad()
  loss:backward()
  mtt.nn.utils.clip_grad_norm_(params, cfg.clip)
  opt.lr = lr_at(step)
  opt:step()
  loss_sum, loss_n = loss_sum + loss:item(), loss_n + 1
  if step % cfg.log_every == 0 or step == cfg.steps then
    print(string.format('step %4d  loss %.4f  lr %.2e', step, loss_sum / loss_n, opt.lr))
    loss_sum, loss_n = 0, 0
  end
end

local exact, token_acc, sample = evaluate()
local function digits_text(s, from, to) return table.concat({ unpack(s, from, to) }, ' ') end
print(string.format('sample: %s | %s', digits_text(sample, 1, cfg.len), digits_text(sample, cfg.len + 2, T)))
print(string.format('final: exact match %.1f%%, token accuracy %.1f%% on %d held-out sequences (%d s)',
  100 * exact, 100 * token_acc, cfg.eval_size, os.time() - wall))
