-- test_nn.lua: mtt.nn modules and models.
--   layers against values worked out by hand; parameter names against Hugging Face's
--   (GPT2LMHeadModel, GPTNeoXForCausalLM) and parameter counts against the published models
--   (gpt2: 124,439,808; pythia-70m: 70,426,624); state_dict / load_state_dict round trips,
--   Hugging Face file quirks and errors; train/eval and reproducible dropout; configs; GPT-2
--   initialization statistics; the key/value cache against the full forward; generation against
--   a plain loop of full forwards; a small model learning a sequence by heart.
-- (The models' logits, loss and gradients against PyTorch: test_gpt_reference.lua.)
local cjson = require 'cjson'
local mtt = require 'mtt'
local nn = mtt.nn

local n_checks = 0
local function ok(cond, msg)
  n_checks = n_checks + 1
  if not cond then error('FAILED: ' .. msg, 2) end
end
local function close(a, b, tol, msg)
  ok(math.abs(a - b) <= tol, string.format('%s: %.9g vs %.9g (tol %g)', msg, a, b, tol))
end
-- The error message of fn(...), which must fail.
local function err_of(fn, ...)
  local good, e = pcall(fn, ...)
  ok(not good, 'expected an error')
  return tostring(e)
end
local function has(s, part, msg)
  ok(s:find(part, 1, true) ~= nil, (msg or 'message') .. ": '" .. s .. "' lacks '" .. part .. "'")
end
-- max |a - b| / max |b|
local function rel_err(a, b)
  local d = (a:double() - b:double())
  local m = math.max(d:max():item(), (-d):max():item())
  local s = math.max(b:double():max():item(), (-b:double()):max():item())
  return m / math.max(s, 1e-30)
end
local function same(a, b) return (a - b):double():eq(0):float():mean():item() == 1 end

local nodrop = { resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
local function tiny_gpt(extra, opts)
  local c = { vocab_size = 37, n_positions = 32, n_embd = 16, n_layer = 2, n_head = 2 }
  for k, v in pairs(nodrop) do c[k] = v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return nn.GPT(c, opts)
end
local function tiny_neox(extra, opts)
  local c = { vocab_size = 37, hidden_size = 16, num_hidden_layers = 2, num_attention_heads = 2, intermediate_size = 32,
    max_position_embeddings = 32, rotary_pct = 0.5 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return nn.GPTNeoX(c, opts)
end
-- Larger weights than the init (std 0.02 makes all logits nearly equal, and ties in argmax).
local function spread(model, seed)
  local gen = mtt.Generator(seed)
  mtt.no_grad(function()
    for _, e in ipairs(model:named_parameters()) do
      if not e[1]:match('norm') and not e[1]:match('ln_') then
        e[2]:copy_(mtt.randn(e[2]:shape(), { generator = gen }) * 0.3)
      end
    end
  end)
  return model
end

-- ---- layers against hand-worked values ----
do
  local lin = nn.Linear(2, 3)
  ok(table.concat(lin.weight:shape(), ',') == '3,2' and table.concat(lin.bias:shape(), ',') == '3',
    'Linear shapes [out, in]')
  local bound = 1 / math.sqrt(2)
  ok(lin.weight:max():item() <= bound and lin.weight:min():item() >= -bound, 'Linear init within 1/sqrt(in)')
  mtt.no_grad(function()
    lin.weight:copy_(mtt.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }))
    lin.bias:copy_(mtt.tensor({ 0.5, -1, 2 }))
  end)
  local y = lin(mtt.tensor({ { 1, -1 }, { 2, 0.5 } })):totable()
  -- row 1: (1-2+0.5, 3-4-1, 5-6+2); row 2: (2+1+0.5, 6+2-1, 10+3+2)
  local want = { { -0.5, -2, 1 }, { 3.5, 7, 15 } }
  for i = 1, 2 do for j = 1, 3 do close(y[i][j], want[i][j], 1e-6, 'Linear value') end end
  ok(nn.Linear(4, 2, { bias = false }).bias == nil, 'Linear without bias')

  local conv = nn.Conv1D(3, 2) -- nf = 3 out, nx = 2 in: weight [2, 3]
  ok(table.concat(conv.weight:shape(), ',') == '2,3', 'Conv1D weight [in, out]')
  ok(conv.bias:eq(0):float():mean():item() == 1, 'Conv1D bias init 0')
  mtt.no_grad(function()
    conv.weight:copy_(mtt.tensor({ { 1, 3, 5 }, { 2, 4, 6 } }))
    conv.bias:copy_(mtt.tensor({ 0.5, -1, 2 }))
  end)
  y = conv(mtt.tensor({ { 1, -1 }, { 2, 0.5 } })):totable()
  for i = 1, 2 do for j = 1, 3 do close(y[i][j], want[i][j], 1e-6, 'Conv1D value') end end

  local emb = nn.Embedding(4, 3)
  mtt.no_grad(function() emb.weight:copy_(mtt.tensor({ { 0, 1, 2 }, { 3, 4, 5 }, { 6, 7, 8 }, { 9, 10, 11 } })) end)
  local e = emb(mtt.tensor({ { 3, 0 } }, { dtype = 'i32' })):totable()
  ok(e[1][1][1] == 9 and e[1][1][3] == 11 and e[1][2][2] == 1, 'Embedding rows (0-based ids)')

  local ln = nn.LayerNorm(4, { eps = 1e-5 })
  mtt.no_grad(function()
    ln.weight:copy_(mtt.tensor({ 1, 2, 0.5, -1 }))
    ln.bias:copy_(mtt.tensor({ 0, 1, 0, 0.25 }))
  end)
  local x = { 1, 2, 4, 9 }
  local mean, var = 4, 0
  for _, v in ipairs(x) do var = var + (v - mean) ^ 2 / 4 end
  local out = ln(mtt.tensor({ x })):totable()[1]
  local w, b = { 1, 2, 0.5, -1 }, { 0, 1, 0, 0.25 }
  for i = 1, 4 do close(out[i], (x[i] - mean) / math.sqrt(var + 1e-5) * w[i] + b[i], 1e-5, 'LayerNorm value') end
  ok(nn.LayerNorm(3, { elementwise_affine = false }):num_parameters() == 0, 'LayerNorm without affine')

  local drop = nn.Dropout(0.25, { generator = mtt.Generator(3) })
  local ones = mtt.ones(4000)
  local d = drop(ones)
  local kept = d:gt(0):float():sum():item()
  ok(math.abs(kept / 4000 - 0.75) < 0.03, 'Dropout keeps ~1-p: ' .. kept / 4000)
  close(d:max():item(), 1 / 0.75, 1e-6, 'Dropout scales kept values by 1/(1-p)')
  local drop2 = nn.Dropout(0.25, { generator = mtt.Generator(3) })
  ok(same(drop2(ones), d), 'Dropout with the same generator seed gives the same mask')
  drop:eval()
  ok(drop(ones) == ones, 'Dropout in eval mode is the identity')
  has(err_of(nn.Dropout, 1.5), 'probability')
  has(err_of(nn.Linear, 2, 3, { bais = false }), "unknown option 'bais'")
end

-- ---- a module class of one's own ----
do
  local Two = nn.module.class('TwoLayer')
  function Two.new()
    local self = nn.module.new(Two)
    self:add_module('fc1', nn.Linear(3, 4))
    self:add_module('fc2', nn.Linear(4, 2))
    self:register_parameter('scale', mtt.ones(1):requires_grad())
    return self
  end
  function Two:forward(x) return self.fc2(self.fc1(x):relu()) * self.scale end
  local m = Two()
  local names = {}
  for i, e in ipairs(m:named_parameters()) do names[i] = e[1] end
  ok(table.concat(names, ' ') == 'scale fc1.weight fc1.bias fc2.weight fc2.bias', 'own parameters first, then children')
  ok(table.concat(m(mtt.randn(5, 3)):shape(), ',') == '5,2', 'module(x) calls forward')
  ok(tostring(m) == 'TwoLayer(27 parameters)', 'tostring: ' .. tostring(m))
  ok(nn.is_module(m) and nn.is_module(m.fc1) and not nn.is_module({}), 'is_module')
  m(mtt.randn(5, 3)):sum():backward()
  ok(m.fc1.weight.grad ~= nil and m.scale.grad ~= nil, 'autograd reaches every parameter')
  has(err_of(nn.Module), 'abstract')
  has(err_of(m.add_module, m, 'a.b', nn.Linear(1, 1)), "invalid name 'a.b'")
  has(err_of(m.register_parameter, m, 'w', 3), 'must be a tensor')
  local Bare = nn.module.class('Bare')
  function Bare.new() return nn.module.new(Bare) end
  has(err_of(function() return Bare()(1) end), 'Bare: forward is not implemented')
end

-- ---- names and counts as Hugging Face's ----
do
  local m = tiny_gpt({ n_layer = 2 })
  local want = { 'transformer.wte.weight', 'transformer.wpe.weight' }
  for i = 0, 1 do
    for _, n in ipairs({ 'ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight',
      'attn.c_proj.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight',
      'mlp.c_proj.bias' }) do
      want[#want + 1] = 'transformer.h.' .. i .. '.' .. n
    end
  end
  want[#want + 1] = 'transformer.ln_f.weight'
  want[#want + 1] = 'transformer.ln_f.bias'
  local got = {}
  for i, e in ipairs(m:named_parameters()) do got[i] = e[1] end
  ok(table.concat(got, ' ') == table.concat(want, ' '), 'GPT named_parameters in HF order:\n' .. table.concat(got, ' '))
  ok(#m:parameters() == #want, 'parameters() gives each tensor once')
  for _, p in ipairs(m:parameters()) do ok(p.grad_required and p.is_leaf, 'parameters are leaves that require grad') end
  local sd = m:state_dict()
  ok(sd['lm_head.weight'] == sd['transformer.wte.weight'], 'state_dict: lm_head.weight is wte (tied)')
  ok(m:state_dict({ tied = false })['lm_head.weight'] == nil, 'state_dict{tied = false} leaves the alias out')
  ok(#m:state_dict_names() == #want + 1, 'state_dict_names lists the alias too')
  ok(table.concat(sd['transformer.h.0.attn.c_attn.weight']:shape(), ',') == '16,48', 'c_attn.weight [C, 3C]')

  local n = tiny_neox({ num_hidden_layers = 1 })
  local nwant = { 'gpt_neox.embed_in.weight' }
  for _, s in ipairs({ 'input_layernorm.weight', 'input_layernorm.bias', 'post_attention_layernorm.weight',
    'post_attention_layernorm.bias', 'attention.query_key_value.weight', 'attention.query_key_value.bias',
    'attention.dense.weight', 'attention.dense.bias', 'mlp.dense_h_to_4h.weight', 'mlp.dense_h_to_4h.bias',
    'mlp.dense_4h_to_h.weight', 'mlp.dense_4h_to_h.bias' }) do
    nwant[#nwant + 1] = 'gpt_neox.layers.0.' .. s
  end
  nwant[#nwant + 1] = 'gpt_neox.final_layer_norm.weight'
  nwant[#nwant + 1] = 'gpt_neox.final_layer_norm.bias'
  nwant[#nwant + 1] = 'embed_out.weight'
  got = {}
  for i, e in ipairs(n:named_parameters()) do got[i] = e[1] end
  ok(table.concat(got, ' ') == table.concat(nwant, ' '),
    'GPTNeoX named_parameters in HF order:\n' .. table.concat(got, ' '))
  ok(table.concat(n:state_dict()['gpt_neox.layers.0.attention.query_key_value.weight']:shape(), ',') == '48,16',
    'query_key_value.weight [3C, C]')

  -- published sizes (uninitialized weights: only the shapes matter)
  do
    local gpt2 = nn.GPT({}, { init = false })
    ok(gpt2:num_parameters() == 124439808,
      'gpt2 (HF defaults) has 124,439,808 parameters, got ' .. gpt2:num_parameters())
    ok(gpt2:num_parameters({ exclude_embeddings = true }) == 124439808 - 50257 * 768 - 1024 * 768,
      'num_parameters without embeddings')
    local pythia = nn.GPTNeoX({ vocab_size = 50304, hidden_size = 512, num_hidden_layers = 6, num_attention_heads = 8,
      intermediate_size = 2048, rotary_pct = 0.25, max_position_embeddings = 2048 }, { init = false })
    ok(pythia:num_parameters() == 70426624, 'pythia-70m has 70,426,624 parameters, got ' .. pythia:num_parameters())
  end
  collectgarbage()

  local s = m:summary()
  has(s, 'transformer.h.1.attn.c_attn')
  has(s, 'Conv1D')
  has(s, '[16,48] [48]')
  has(s, 'tied to transformer.wte.weight')
  has(s, 'GPT: ' .. m:num_parameters() .. ' parameters')
  local lines = 0
  for _ in s:gmatch('\n') do lines = lines + 1 end
  ok(lines == 2 + 2 * 6 + 2 + 1, 'summary: a line per layer with parameters, header and total, got ' .. lines)
end

-- ---- state dicts ----
do
  mtt.manual_seed(1)
  local a = spread(tiny_gpt(), 5)
  mtt.manual_seed(2)
  local b = tiny_gpt()
  local idx = mtt.randint(0, 37, { 2, 9 }, { generator = mtt.Generator(7) })
  local la = a(idx)
  ok(not same(b(idx), la), 'different seeds give different models')
  b:load_state_dict(a:state_dict())
  ok(same(b(idx), la), 'load_state_dict(state_dict()) gives the same logits')
  mtt.manual_seed(3)
  local c = tiny_gpt()
  c:load_state_dict(a:state_dict({ tied = false }))
  ok(same(c(idx), la), 'a tied tensor needs only one of its names')
  ok(c.lm_head.weight == c.transformer.wte.weight, 'loading keeps the tie')

  -- copies, not aliases: changing a's weights later leaves b alone
  local before = b.transformer.wte.weight[{ 1, 1 }]
  mtt.no_grad(function() a.transformer.wte.weight:add_(1) end)
  ok(b.transformer.wte.weight[{ 1, 1 }] == before, 'load_state_dict copies the values')

  -- errors
  local sd = a:state_dict()
  local partial = {}
  for k, v in pairs(sd) do partial[k] = v end
  partial['transformer.h.1.mlp.c_fc.bias'] = nil
  partial['transformer.h.9.extra'] = mtt.zeros(3)
  local e = err_of(b.load_state_dict, b, partial)
  has(e, 'missing 1: transformer.h.1.mlp.c_fc.bias')
  has(e, 'unexpected 1: transformer.h.9.extra')
  has(e, 'strict = false')
  local missing, unexpected = b:load_state_dict(partial, { strict = false })
  ok(#missing == 1 and missing[1] == 'transformer.h.1.mlp.c_fc.bias', 'strict = false returns the missing names')
  ok(#unexpected == 1 and unexpected[1] == 'transformer.h.9.extra', 'strict = false returns the unexpected names')
  partial['transformer.h.9.extra'] = nil
  partial['transformer.h.1.mlp.c_fc.bias'] = mtt.zeros(5)
  e = err_of(b.load_state_dict, b, partial)
  has(e, "'transformer.h.1.mlp.c_fc.bias' has shape [5] in the state dict, the model expects [64]")
  has(err_of(b.load_state_dict, b, { ['transformer.wte.weight'] = 3 }), 'expected a tensor')
  has(err_of(b.load_state_dict, b, sd, { stict = true }), "unknown option 'stict'")

  -- Hugging Face's own GPT-2 files: names without 'transformer.', attention-mask buffers
  local hf = {}
  for k, v in pairs(a:state_dict({ tied = false })) do hf[k:gsub('^transformer%.', '')] = v end
  hf['h.0.attn.bias'] = mtt.ones(1, 1, 32, 32)
  hf['h.1.attn.masked_bias'] = mtt.tensor(-1e4)
  mtt.manual_seed(4)
  local d = tiny_gpt()
  d:load_state_dict(hf)
  ok(same(d(idx), a(idx)), 'a GPT-2 file as Hugging Face writes it loads')
  -- and GPT-NeoX buffers
  local na, nb = spread(tiny_neox(), 6), tiny_neox()
  local nsd = {}
  for k, v in pairs(na:state_dict()) do nsd[k] = v end
  nsd['gpt_neox.layers.0.attention.bias'] = mtt.ones(1, 1, 32, 32)
  nsd['gpt_neox.layers.0.attention.masked_bias'] = mtt.tensor(-1e9)
  nsd['gpt_neox.layers.1.attention.rotary_emb.inv_freq'] = mtt.ones(4)
  nb:load_state_dict(nsd)
  ok(same(nb(idx), na(idx)), 'a GPT-NeoX file with its buffers loads')

  -- to(): dtype conversion keeps the tie and the function
  local f32 = a(idx)
  a:to('f64')
  ok(a.transformer.wte.weight.dtype == 'f64' and a.lm_head.weight == a.transformer.wte.weight, 'to(f64) keeps the tie')
  ok(a.transformer.wte.weight.grad_required and a.transformer.wte.weight.is_leaf, 'to() gives leaves that require grad')
  local f64 = a(idx)
  ok(f64.dtype == 'f64' and rel_err(f32, f64) < 1e-5, 'an f64 model computes the same logits: ' .. rel_err(f32, f64))
  a:to('f32')
  ok(a:to('cpu') == a and a.transformer.wpe.weight.dtype == 'f32', 'to(cpu) on cpu')
  local n64 = tiny_neox()
  local n32 = n64(idx)
  n64:to('f64')
  ok(rel_err(n32, n64(idx)) < 1e-5, 'GPTNeoX in f64')
end

-- ---- train / eval, reproducible dropout ----
do
  local cfg = { resid_pdrop = 0.1, embd_pdrop = 0.1, attn_pdrop = 0.1 }
  local m = tiny_gpt(cfg, { generator = mtt.Generator(1), dropout_generator = mtt.Generator(2) })
  local idx = mtt.randint(0, 37, { 2, 9 }, { generator = mtt.Generator(7) })
  ok(m.training and m.transformer.h[2].attn.attn_dropout.training, 'a new model is in training mode')
  local t1, t2 = m(idx), m(idx)
  ok(not same(t1, t2), 'dropout changes outputs in training mode')
  m:eval()
  ok(not m.transformer.h[2].mlp.dropout.training and not m.transformer.drop.training, 'eval() reaches every module')
  ok(same(m(idx), m(idx)), 'eval mode is deterministic')
  local e1 = m(idx)
  m:train()
  ok(m.transformer.h[1].attn.resid_dropout.training, 'train() reaches every module')
  local m2 = tiny_gpt(cfg, { generator = mtt.Generator(1), dropout_generator = mtt.Generator(2) })
  ok(same(m2(idx), t1), 'same generators: same weights and same dropout masks')
  m2:eval()
  ok(same(m2(idx), e1), 'same seed, same eval outputs')
  -- training-mode attention dropout (the unfused path) still gives a gradient everywhere
  local _, loss = m(idx, idx)
  loss:backward()
  for _, e in ipairs(m:named_parameters()) do ok(e[2].grad ~= nil, 'gradient for ' .. e[1]) end
  m:zero_grad()
  ok(m.transformer.wte.weight.grad == nil, 'zero_grad drops the gradients')
  -- the unfused attention path equals the fused one when nothing is dropped
  local z = spread(tiny_gpt(), 3)
  local fused = z(idx)
  local dp = z.transformer.h[1].attn.attn_dropout
  dp.p = 1e-300 -- takes the unfused path; keeps every value (scale 1)
  local unfused = z(idx)
  ok(rel_err(unfused, fused) < 1e-5, 'step-by-step attention == fused attention: ' .. rel_err(unfused, fused))
end

-- ---- configs ----
do
  -- Hugging Face's config.json for gpt2, as published
  local hf_json = [[{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
    "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
    "vocab_size": 50257}]]
  local m = nn.GPT(cjson.decode(hf_json), { init = false })
  ok(m.config.n_layer == 12 and m.config.n_inner == nil and m.config.tie_word_embeddings,
    'gpt2 config.json works as is')
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write([[{"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
    "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 256, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 128, "model_type": "gpt_neox", "num_attention_heads": 4, "num_hidden_layers": 2,
    "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false, "torch_dtype": "float16",
    "transformers_version": "4.24.0", "use_cache": true, "use_parallel_residual": true, "vocab_size": 100}]])
  f:close()
  local n = nn.GPTNeoX(path)
  os.remove(path)
  ok(n.config.hidden_size == 64 and n.config.rotary_ndims == 4, 'a Pythia-style config.json path works')
  has(err_of(nn.GPT, { n_embd = 64, n_heads = 4 }), "unknown config field 'n_heads'")
  has(err_of(nn.GPT, { n_embd = 64, n_head = 5 }), 'multiple of n_head')
  has(err_of(nn.GPT, { activation_function = 'gelu_old' }), "unknown activation 'gelu_old'")
  has(err_of(nn.GPT, { n_layer = 1.5 }), "'n_layer' must be an integer")
  has(err_of(nn.GPT, { attn_pdrop = 2 }), "'attn_pdrop' must be a probability")
  has(err_of(nn.GPT, { add_cross_attention = true }), 'must be false')
  has(err_of(nn.GPT, {}, { seed = 1 }), "unknown option 'seed'")
  has(err_of(nn.GPTNeoX, { hidden_size = 64, num_attention_heads = 4, rotary_pct = 0.1 }), 'must be even')
  has(err_of(nn.GPTNeoX, { num_layers = 2 }), "unknown config field 'num_layers'")
  local r = nn.GPTNeoX({ hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1, intermediate_size = 8,
    vocab_size = 10, rope_theta = 500, partial_rotary_factor = 1 }, { init = false })
  ok(r.config.rotary_emb_base == 500 and r.config.rotary_pct == 1,
    'newer field names rope_theta, partial_rotary_factor')
end

-- ---- GPT-2 initialization ----
do
  local cfg = { vocab_size = 64, n_positions = 16, n_embd = 128, n_layer = 4, n_head = 4 }
  local m = nn.GPT(cfg, { generator = mtt.Generator(9) })
  local function std(t) return math.sqrt((t * t):mean():item() - t:mean():item() ^ 2) end
  local h = m.transformer.h[3]
  close(std(h.attn.c_attn.weight), 0.02, 0.02 * 0.03, 'c_attn ~ N(0, 0.02)')
  close(std(h.mlp.c_fc.weight), 0.02, 0.02 * 0.03, 'c_fc ~ N(0, 0.02)')
  local scaled = 0.02 / math.sqrt(2 * 4)
  close(std(h.attn.c_proj.weight), scaled, scaled * 0.03, 'attn c_proj ~ N(0, 0.02/sqrt(2 n_layer))')
  close(std(h.mlp.c_proj.weight), scaled, scaled * 0.03, 'mlp c_proj scaled too')
  close(std(m.transformer.wte.weight), 0.02, 0.02 * 0.05, 'wte ~ N(0, 0.02)')
  ok(h.attn.c_attn.bias:eq(0):float():mean():item() == 1, 'biases start at 0')
  ok(h.ln_1.weight:eq(1):float():mean():item() == 1 and h.ln_1.bias:eq(0):float():mean():item() == 1, 'LayerNorm 1, 0')
  local m2 = nn.GPT(cfg, { generator = mtt.Generator(9) })
  ok(same(m2.transformer.h[3].mlp.c_fc.weight, h.mlp.c_fc.weight), 'the same generator gives the same weights')
  local n = nn.GPTNeoX({ vocab_size = 64, hidden_size = 128, num_hidden_layers = 1, num_attention_heads = 4,
    intermediate_size = 256 }, { generator = mtt.Generator(9) })
  close(std(n.gpt_neox.layers[1].mlp.dense_h_to_4h.weight), 0.02, 0.02 * 0.03, 'GPTNeoX Linear ~ N(0, 0.02)')
  close(std(n.embed_out.weight), 0.02, 0.02 * 0.05, 'GPTNeoX embed_out ~ N(0, 0.02)')
end

-- ---- forward arguments and errors ----
do
  local m = spread(tiny_gpt(), 11)
  local idx = mtt.randint(0, 37, { 2, 8 }, { generator = mtt.Generator(1) })
  local logits, loss = m(idx, idx)
  ok(table.concat(logits:shape(), ',') == '2,8,37' and loss.ndim == 0, 'logits [B, T, V], a scalar loss')
  local l1 = m(idx:select(1, 1))
  ok(table.concat(l1:shape(), ',') == '1,8,37', 'a 1-D idx is one sequence')
  ok(rel_err(m(idx:select(1, 2):totable()), m(idx):narrow(1, 2, 1)) < 1e-6, 'a Lua list of ids works')
  local _, no_loss = m(idx)
  ok(no_loss == nil, 'no targets, no loss')
  -- ignore_index and mask: the loss over the counted positions only
  local tg = idx:clone()
  tg[{ 1, 1 }] = -100
  local mask = mtt.ones(2, 8)
  mask[{ 2, 3 }] = 0
  local _, masked = m(idx, tg, { mask = mask })
  local lp = logits:log_softmax(-1)
  local sum, count = 0, 0
  for b = 1, 2 do
    for t = 1, 8 do
      if not (b == 1 and t == 1) and not (b == 2 and t == 3) then
        sum = sum - lp[{ b, t, idx[{ b, t }] + 1 }]
        count = count + 1
      end
    end
  end
  close(masked:item(), sum / count, 1e-5, 'loss with ignore_index and mask')
  has(err_of(m, idx:float()), 'idx must be i32')
  has(err_of(m, mtt.zeros(1, 33, { dtype = 'i32' })), 'exceed n_positions 32')
  has(err_of(m, idx, idx:narrow(2, 1, 4)), 'targets [2,4] do not match')
  has(err_of(m, idx, idx, { mask = mask, ignore = 1 }), "unknown option 'ignore'")
end

-- ---- the cache gives the full forward's logits ----
local function check_cache(name, model)
  local idx = mtt.randint(0, 37, { 2, 20 }, { generator = mtt.Generator(2) })
  model:eval()
  local full = mtt.no_grad(function() return model(idx) end)
  local cache = model:new_cache(2, 32)
  local chunks = { { 1, 7 }, { 8, 8 }, { 9, 12 } }
  for t = 13, 20 do chunks[#chunks + 1] = { t, t } end
  local worst = 0
  for _, ch in ipairs(chunks) do
    local a, z = ch[1], ch[2]
    local got = model:forward_cached(idx:narrow(2, a, z - a + 1), cache)
    worst = math.max(worst, rel_err(got, full:narrow(2, a, z - a + 1)))
  end
  ok(cache.len == 20, name .. ': cache length')
  ok(worst < 1e-5, string.format('%s: cached logits == full forward (max rel err %.2e)', name, worst))
  print(string.format('%s: cached logits vs full forward, max rel err %.2e', name, worst))
  local last = model:forward_cached(idx:narrow(2, 1, 5), model:new_cache(2, 8), true)
  ok(table.concat(last:shape(), ',') == '2,37' and rel_err(last, full:select(2, 5)) < 1e-5, name .. ': last_only')
  has(err_of(model.forward_cached, model, idx:narrow(2, 1, 9), model:new_cache(2, 8)), 'exceed')
end
check_cache('GPT', spread(tiny_gpt(), 21))
check_cache('GPTNeoX', spread(tiny_neox(), 22))
check_cache('GPTNeoX sequential', spread(tiny_neox({ use_parallel_residual = false, rotary_pct = 1 }), 23))

-- ---- generation ----
-- The reference: a full forward over the whole context for every new id (its last
-- n_positions ids), argmax of the last position.
local function greedy_reference(model, prompt, n, limit)
  local ids = {}
  for i, v in ipairs(prompt) do ids[i] = v end
  local new = {}
  mtt.no_grad(function()
    for _ = 1, n do
      local ctx = {}
      for i = math.max(1, #ids - limit + 1), #ids do ctx[#ctx + 1] = ids[i] end
      local logits = model(ctx)
      local id = logits:select(2, -1):argmax():item()
      ids[#ids + 1] = id
      new[#new + 1] = id
    end
  end)
  return new
end

local function check_generate(name, model, limit)
  local prompt = { 3, 1, 4, 1, 5, 9 }
  local got, why = model:generate(prompt, { max_new_tokens = 12 })
  local want = greedy_reference(model, prompt, 12, limit)
  ok(why == 'length' and #got == 12, name .. ': 12 new ids')
  ok(table.concat(got, ',') == table.concat(want, ','),
    string.format('%s: greedy generation == full-forward loop\n  %s\n  %s', name, table.concat(got, ','),
      table.concat(want, ',')))
  local again = model:generate(mtt.tensor(prompt, { dtype = 'i32' }), { max_new_tokens = 12, temperature = 0 })
  ok(table.concat(again, ',') == table.concat(got, ','), name .. ': greedy is deterministic (tensor prompt)')
  -- past the model's positions: the context keeps its last `limit` ids
  local long = {}
  for i = 1, limit - 3 do long[i] = (i * 7) % 37 end
  local lg = model:generate(long, { max_new_tokens = 9 })
  ok(table.concat(lg, ',') == table.concat(greedy_reference(model, long, 9, limit), ','),
    name .. ': generation past n_positions')
  -- stop sequences: cut before the first one
  local s, why2 = model:generate(prompt, { max_new_tokens = 12, stop = { { 99, 98 }, { got[3], got[4] } } })
  ok(why2 == 'stop' and table.concat(s, ',') == table.concat({ got[1], got[2] }, ','), name .. ': stop sequence')
  local s1 = model:generate(prompt, { max_new_tokens = 12, stop = { got[1] } })
  ok(#s1 == 0, name .. ': a one-id stop given as a number')
  ok(#model:generate(prompt, { max_new_tokens = 0 }) == 0, name .. ': max_new_tokens = 0')
  -- sampling: reproducible with a generator; top_k = 1 is greedy
  local a = model:generate(prompt, { max_new_tokens = 12, temperature = 1, generator = mtt.Generator(5) })
  local b = model:generate(prompt, { max_new_tokens = 12, temperature = 1, generator = mtt.Generator(5) })
  local c = model:generate(prompt, { max_new_tokens = 12, temperature = 1, generator = mtt.Generator(6) })
  ok(table.concat(a, ',') == table.concat(b, ','), name .. ': sampling with the same generator seed repeats')
  ok(table.concat(a, ',') ~= table.concat(c, ','), name .. ': another seed samples something else')
  local k1 = model:generate(prompt, { max_new_tokens = 12, temperature = 0.7, top_k = 1, generator = mtt.Generator(5) })
  ok(table.concat(k1, ',') == table.concat(got, ','), name .. ': top_k = 1 samples the argmax')
  local k3 = model:generate(prompt, { max_new_tokens = 40, temperature = 5, top_k = 3, generator = mtt.Generator(5) })
  ok(#k3 == 40, name .. ': top_k sampling length')
  ok(model.training, name .. ': generate restores training mode')
  has(err_of(model.generate, model, prompt, { max_tokens = 3 }), "unknown option 'max_tokens'")
  has(err_of(model.generate, model, {}, {}), 'empty')
  has(err_of(model.generate, model, prompt, { temperature = -1 }), 'temperature')
end
local g = spread(tiny_gpt({ n_positions = 16 }), 31)
g:train()
check_generate('GPT', g, 16)
local gn = spread(tiny_neox({ max_position_embeddings = 16 }), 32)
check_generate('GPTNeoX', gn, 16)

-- sampling follows the distribution: with temperature 1, the frequency of each first id
-- matches softmax(logits) of the prompt (2000 draws, 3-sigma bound)
do
  local m = nn.GPT({ vocab_size = 4, n_positions = 8, n_embd = 8, n_layer = 1, n_head = 1, resid_pdrop = 0,
    embd_pdrop = 0, attn_pdrop = 0 }, { generator = mtt.Generator(1) })
  spread(m, 2)
  local probs = mtt.no_grad(function() return m({ 1, 2 }):select(2, -1):softmax(-1) end):reshape(-1):totable()
  local counts, n, gen = { 0, 0, 0, 0 }, 2000, mtt.Generator(3)
  for _ = 1, n do
    local id = m:generate({ 1, 2 }, { max_new_tokens = 1, temperature = 1, generator = gen })[1]
    counts[id + 1] = counts[id + 1] + 1
  end
  for i = 1, 4 do
    local sd = math.sqrt(probs[i] * (1 - probs[i]) / n)
    ok(math.abs(counts[i] / n - probs[i]) <= 3 * sd + 1e-9,
      string.format('sampled frequency of id %d: %.3f vs p %.3f', i - 1, counts[i] / n, probs[i]))
  end
end

-- ---- a small GPT learns a sequence by heart ----
do
  mtt.manual_seed(0)
  local m = nn.GPT({ vocab_size = 16, n_positions = 16, n_embd = 32, n_layer = 2, n_head = 4, resid_pdrop = 0,
    embd_pdrop = 0, attn_pdrop = 0 })
  local seq = { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3 }
  local x, y = {}, {}
  for i = 1, 15 do x[i], y[i] = seq[i], seq[i + 1] end
  local idx, tg = mtt.tensor({ x }, { dtype = 'i32' }), mtt.tensor({ y }, { dtype = 'i32' })
  local opt = mtt.optim.AdamW(m:parameters(), { lr = 1e-2, weight_decay = 0 })
  local first, last
  for _ = 1, 60 do
    local _, loss = m(idx, tg)
    opt:zero_grad()
    loss:backward()
    opt:step()
    first = first or loss:item()
    last = loss:item()
  end
  print(string.format('memorization: loss %.3f -> %.3f in 60 AdamW steps', first, last))
  ok(first > 2.3 and last < 0.05, string.format('the loss falls from ~ln 16 to ~0: %.3f -> %.3f', first, last))
  local out = m:generate({ 3, 1, 4 }, { max_new_tokens = 12 })
  ok(table.concat(out, ',') == table.concat({ 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9 }, ','), 'it generates the rest')
end

-- ---- the models on the cuda backend against the cpu ----
-- Runs where a cuda device is there: a GPU, or libmtt_cudaemu.so (the cuda kernels on the CPU;
-- ctest's lua_test_nn_cuda_emulated sets MTT_NN_EXPECT_CUDA=1, so a missing device fails there
-- rather than skipping). Tolerance: max relative error 1e-5 (f32, summed in other orders).
if mtt.cuda.available() then
  for _, arch in ipairs({ 'GPT', 'GPTNeoX' }) do
    local m = spread(arch == 'GPT' and tiny_gpt() or tiny_neox(), 41)
    local idx = mtt.randint(0, 37, { 2, 11 }, { generator = mtt.Generator(4) })
    local l_cpu, loss_cpu = m(idx, idx)
    loss_cpu:backward()
    local grads = {}
    for i, p in ipairs(m:parameters()) do grads[i] = p.grad end
    local gen_cpu = m:generate({ 5, 6, 7 }, { max_new_tokens = 5 })
    m:zero_grad()
    m:to('cuda')
    ok(m:parameters()[1].device == 'cuda' and m:parameters()[1].is_leaf, arch .. ': to(cuda) moves the parameters')
    local l_dev, loss_dev = m(idx, idx) -- cpu ids go to the model's device
    ok(l_dev.device == 'cuda', arch .. ': logits on the device')
    ok(rel_err(l_dev:to('cpu'), l_cpu) < 1e-5, arch .. ': cuda logits == cpu logits')
    loss_dev:backward()
    local worst = 0
    for i, p in ipairs(m:parameters()) do worst = math.max(worst, rel_err(p.grad:to('cpu'), grads[i])) end
    ok(worst < 1e-5, string.format('%s: cuda gradients == cpu gradients (%.2e)', arch, worst))
    local gen_dev = m:generate({ 5, 6, 7 }, { max_new_tokens = 5 })
    ok(table.concat(gen_dev, ',') == table.concat(gen_cpu, ','), arch .. ': greedy generation on cuda == on cpu')
    ok(#m:generate({ 5, 6, 7 }, { max_new_tokens = 5, temperature = 1, top_k = 4, generator = mtt.Generator(1) }) == 5,
      arch .. ': sampling on cuda')
    print(string.format('%s on cuda: logits rel err %.2e, gradients %.2e', arch, rel_err(l_dev:to('cpu'), l_cpu), worst))
  end
elseif os.getenv('MTT_NN_EXPECT_CUDA') == '1' then
  ok(false, 'MTT_NN_EXPECT_CUDA=1 but no cuda device (MTT_LIBRARY=' .. tostring(os.getenv('MTT_LIBRARY')) .. ')')
else
  print('cuda part: not run, no cuda device (not counted)')
end

print(string.format('test_nn: all %d checks passed', n_checks))
