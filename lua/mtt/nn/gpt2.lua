-- mtt.nn.gpt2: a GPT with GPT-2's layout (mtt.nn.GPT), configured with Hugging Face's
-- GPT2Config field names, its tensors named as in GPT2LMHeadModel's state dict.
--
--   local model = mtt.nn.GPT{vocab_size = 50257, n_positions = 1024, n_embd = 768, n_layer = 12,
--                            n_head = 12, resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0}
--   local logits, loss = model(idx, targets)    -- idx, targets: i32 [B, T] (0-based ids)
--
-- Layout: token + learned position embeddings, n_layer pre-LN blocks (attention, then a GELU
-- MLP of n_inner = 4 n_embd), a final LayerNorm, and a head tied to the token embedding.
-- Init as GPT-2: N(0, initializer_range), the residual projections (c_proj) scaled by
-- 1/sqrt(2 n_layer), biases 0, LayerNorms 1 and 0.
--
-- Speed: c_attn's output is not split into q, k, v (a select or narrow view of the fused
-- activation gets, in the backward, a zero tensor the size of the whole activation, one per
-- view); q, k and v each come from their own matmul against a column slice of c_attn's weight,
-- whose backward zero tensor is the size of the weight only (G.qkv_split switches between the
-- two). Measured forward+backward of a whole model, 1 thread, thread CPU time (the machine was
-- shared): B16 T128 C256 H4 4 layers 832 ms vs 939 ms with select views; B8 T256 C384 H6
-- 2 layers 912 vs 1007 ms. Attention is the core's fused kernel, which reads the [B, H, T, D]
-- views of q, k, v in place; with attn_pdrop > 0 in training it is computed step by step
-- instead (the fused kernel has no dropout on the probabilities).
local tensor = require 'mtt.tensor'
local module = require 'mtt.nn.module'
local L = require 'mtt.nn.layers'
local activations = require 'mtt.nn.activations'
local common = require 'mtt.nn.common'
local causal_lm = require 'mtt.nn.causal_lm'

local T = tensor.methods

local G = {}

-- 'weight': q, k, v from three matmuls against column slices of c_attn.weight (default);
-- 'activation': one matmul, then select views of [B, T, 3, H, D]. Kept for measurements.
G.qkv_split = 'weight'

local FIELDS = {
  { 'vocab_size', 'int', 50257 },
  { 'n_positions', 'int', 1024 },
  { 'n_embd', 'int', 768 },
  { 'n_layer', 'count', 12 },
  { 'n_head', 'int', 12 },
  { 'n_inner', 'int?', nil },
  { 'activation_function', 'string', 'gelu_new' },
  { 'resid_pdrop', 'prob', 0.1 },
  { 'embd_pdrop', 'prob', 0.1 },
  { 'attn_pdrop', 'prob', 0.1 },
  { 'layer_norm_epsilon', 'positive', 1e-5 },
  { 'initializer_range', 'positive', 0.02 },
  { 'scale_attn_weights', 'boolean', true },
  { 'scale_attn_by_inverse_layer_idx', 'boolean', false },
  { 'reorder_and_upcast_attn', 'boolean', false }, -- upcasts half-precision scores; all f32 here
  { 'tie_word_embeddings', 'boolean', true },
  { 'add_cross_attention', 'boolean', false,
    function(v) return v and 'must be false (no encoder-decoder here)' or nil end },
}
-- GPT2Config keys that do not change this model (heads for classification, legacy names).
local IGNORED = {}
for k in ([[n_ctx summary_type summary_use_proj summary_activation summary_proj_to_labels
  summary_first_dropout]]):gmatch('%S+') do
  IGNORED[k] = true
end

-- The names mtt.nn.causal_lm reads: config fields, submodules, and the input embedding
-- (token + position, then dropout).
local LAYOUT = {
  name = 'GPT', n_positions = 'n_positions', n_layer = 'n_layer', n_head = 'n_head', n_embd = 'n_embd',
  act = 'activation_function', body = 'transformer', wte = 'wte', blocks = 'h', ln_f = 'ln_f', head = 'lm_head',
  embed = function(body, idx, pos0, Tn)
    return body.drop(T.add(body.wte(idx), T.narrow(body.wpe.weight, 1, pos0 + 1, Tn)))
  end,
}

function G.resolve_config(cfg) return causal_lm.resolve_config(LAYOUT, cfg, FIELDS, IGNORED) end

-- ---- attention ----
local Attention = module.class('GPT2Attention')

function Attention.new(c, layer_idx, o)
  local self = module.new(Attention)
  local C = c.n_embd
  self.n_head, self.head_dim = c.n_head, C / c.n_head
  local scale = c.scale_attn_weights and 1 / math.sqrt(self.head_dim) or 1
  if c.scale_attn_by_inverse_layer_idx then scale = scale / (layer_idx + 1) end
  self.scale = scale
  self:add_module('c_attn', L.Conv1D(3 * C, C, o.init_std))
  self:add_module('c_proj', L.Conv1D(C, C, o.proj_std))
  self:add_module('attn_dropout', L.Dropout(c.attn_pdrop, { generator = o.dropout_generator }))
  self:add_module('resid_dropout', L.Dropout(c.resid_pdrop, { generator = o.dropout_generator }))
  return self
end

-- x [B, T, C] -> q, k, v [B, H, T, D] (views)
function Attention:qkv(x)
  local B, Tn, C = tonumber(x.dims[0]), tonumber(x.dims[1]), tonumber(x.dims[2])
  local H, D = self.n_head, self.head_dim
  local W, b = self.c_attn.weight, self.c_attn.bias
  if G.qkv_split == 'activation' then
    local qkv = T.permute(T.view(T.add(T.matmul(x, W), b), B, Tn, 3, H, D), 3, 1, 4, 2, 5)
    return T.select(qkv, 1, 1), T.select(qkv, 1, 2), T.select(qkv, 1, 3)
  end
  local out = {}
  for j = 0, 2 do
    local y = T.add(T.matmul(x, T.narrow(W, 2, j * C + 1, C)), T.narrow(b, 1, j * C + 1, C))
    out[j + 1] = T.transpose(T.view(y, B, Tn, H, D), 2, 3)
  end
  return out[1], out[2], out[3]
end

-- forward(x[, layer cache]): x [B, T, C]. With a cache (generation), the new keys and values
-- are appended to it and the queries attend to everything cached.
function Attention:forward(x, cache)
  local q, k, v = self:qkv(x)
  return self.resid_dropout(self.c_proj(causal_lm.attend(q, k, v, cache, self.scale, self.attn_dropout)))
end

-- ---- MLP ----
local MLP = module.class('GPT2MLP')

function MLP.new(c, o)
  local self = module.new(MLP)
  local inner = c.n_inner or 4 * c.n_embd
  self:add_module('c_fc', L.Conv1D(inner, c.n_embd, o.init_std))
  self:add_module('c_proj', L.Conv1D(c.n_embd, inner, o.proj_std))
  self:add_module('dropout', L.Dropout(c.resid_pdrop, { generator = o.dropout_generator }))
  self.act = activations.get(c.activation_function, 'nn.GPT')
  return self
end

function MLP:forward(x) return self.dropout(self.c_proj(self.act(self.c_fc(x)))) end

-- ---- Block (pre-LN) ----
local Block = module.class('GPT2Block')

function Block.new(c, layer_idx, o)
  local self = module.new(Block)
  local ln = { eps = c.layer_norm_epsilon, init = o.init }
  self:add_module('ln_1', L.LayerNorm(c.n_embd, ln))
  self:add_module('attn', Attention.new(c, layer_idx, o))
  self:add_module('ln_2', L.LayerNorm(c.n_embd, ln))
  self:add_module('mlp', MLP.new(c, o))
  return self
end

function Block:forward(x, cache)
  x = T.add(x, self.attn(self.ln_1(x), cache))
  return T.add(x, self.mlp(self.ln_2(x)))
end

G.Attention, G.MLP, G.Block = Attention, MLP, Block

-- ---- the transformer body (transformer.*) ----
local Body = module.class('GPT2Model')

-- ---- GPT ----
local GPT = module.class('GPT')
G.GPT = GPT

-- GPT(config[, {generator =, dropout_generator =, init = true}]): config is a table or the
-- path of a config.json. generator draws the initial weights (the default generator if nil);
-- dropout_generator drives every dropout (default: a new generator seeded from generator, so
-- mtt.manual_seed(s) fixes both). init = false leaves the weights uninitialized (for a
-- checkpoint about to be loaded).
function GPT.new(cfg, opts)
  local self, c, o = causal_lm.new(GPT, LAYOUT, G.resolve_config, cfg, opts)
  local std = c.initializer_range
  local lo = {
    init = o.init,
    dropout_generator = self.generator,
    init_std = { std = std, generator = o.generator, init = o.init },
    proj_std = { std = std / math.sqrt(2 * math.max(c.n_layer, 1)), generator = o.generator, init = o.init },
  }
  local body = module.new(Body)
  local emb = { std = std, generator = o.generator, init = o.init }
  body:add_module('wte', L.Embedding(c.vocab_size, c.n_embd, emb))
  body:add_module('wpe', L.Embedding(c.n_positions, c.n_embd, emb))
  body:add_module('drop', L.Dropout(c.embd_pdrop, { generator = self.generator }))
  local h = module.ModuleList()
  for i = 0, c.n_layer - 1 do h:append(Block.new(c, i, lo)) end
  body:add_module('h', h)
  body:add_module('ln_f', L.LayerNorm(c.n_embd, { eps = c.layer_norm_epsilon, init = o.init }))
  self:add_module('transformer', body)
  self:add_module('lm_head', common.lm_head(c.n_embd, c.vocab_size,
    c.tie_word_embeddings and body.wte.weight or nil, emb))
  return self
end

-- hidden, forward (model(idx[, targets[, {mask =, ignore_index = -100}]]) -> logits, loss),
-- new_cache, forward_cached, max_positions
causal_lm.install(GPT, LAYOUT)

-- Hugging Face checkpoints as they are: GPT-2's own files name tensors without the
-- 'transformer.' prefix and carry the attention-mask buffers (attn.bias, attn.masked_bias).
local function add_prefix(k)
  if k:match('^wte%.') or k:match('^wpe%.') or k:match('^h%.') or k:match('^ln_f%.') then return 'transformer.' .. k end
  return k
end

function GPT.normalize_state_dict(_, sd)
  local prefixed = false
  for k in pairs(sd) do
    if k:sub(1, 12) == 'transformer.' or k:sub(1, 8) == 'lm_head.' then prefixed = true end
  end
  return causal_lm.drop_buffers(sd, { '%.attn%.bias$', '%.attn%.masked_bias$' }, not prefixed and add_prefix or nil)
end

return G
