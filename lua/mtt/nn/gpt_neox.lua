-- mtt.nn.gpt_neox: the GPT-NeoX / Pythia layout (mtt.nn.GPTNeoX), configured with Hugging
-- Face's GPTNeoXConfig field names, its tensors named as in GPTNeoXForCausalLM's state dict
-- (gpt_neox.embed_in.weight, gpt_neox.layers.N.attention.query_key_value.weight, ...,
-- embed_out.weight), so Pythia checkpoints load as they are.
--
-- Differences from GPT-2: no position embedding but rotary embeddings on the first
-- rotary_pct of each head's dims; attention and MLP side by side on the same input
-- (use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x))); nn.Linear layers (weight
-- [out, in]); query_key_value's rows interleaved per head ([H, 3, D] of q, k, v); an untied
-- output head (embed_out) by default; "gelu" is the exact erf GELU.
--
-- Rotary, composed from core ops: x_rot = x cos + rotate_half(x) sin on [B, T, H, D], with
-- cos = 1 and sin = 0 on the dims past rotary_ndims (so they pass through unchanged), and
-- rotate_half(x) = x @ R for a fixed signed permutation R [D, D] (each output is exactly one
-- input or its negative): one small matmul instead of slices and a cat, whose backward would
-- allocate zero tensors of the whole activation. The cos/sin tables round as Hugging Face's
-- f32 computation does (inv_freq, positions * inv_freq and cos/sin each rounded to f32).
local ffi = require 'ffi'
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local creation = require 'mtt.creation'
local F = require 'mtt.functional'
local module = require 'mtt.nn.module'
local L = require 'mtt.nn.layers'
local activations = require 'mtt.nn.activations'
local common = require 'mtt.nn.common'
local causal_lm = require 'mtt.nn.causal_lm'

local T = tensor.methods
local raise = U.raise

local N = {}

local FIELDS = {
  { 'vocab_size', 'int', 50432 },
  { 'hidden_size', 'int', 6144 },
  { 'num_hidden_layers', 'count', 44 },
  { 'num_attention_heads', 'int', 64 },
  { 'intermediate_size', 'int', 24576 },
  { 'hidden_act', 'string', 'gelu' },
  { 'rotary_pct', 'prob', 0.25 },
  { 'rotary_emb_base', 'positive', 10000 },
  { 'attention_dropout', 'prob', 0 },
  { 'hidden_dropout', 'prob', 0 },
  { 'max_position_embeddings', 'int', 2048 },
  { 'initializer_range', 'positive', 0.02 },
  { 'layer_norm_eps', 'positive', 1e-5 },
  { 'use_parallel_residual', 'boolean', true },
  { 'tie_word_embeddings', 'boolean', false },
  { 'attention_bias', 'boolean', true },
}
-- Newer Hugging Face versions renamed two fields.
local ALIASES = { rope_theta = 'rotary_emb_base', partial_rotary_factor = 'rotary_pct' }
local IGNORED = { rope_scaling = true }

-- The names mtt.nn.causal_lm reads: config fields, submodules, and the input embedding (no
-- positions: rotary embeddings in the attention).
local LAYOUT = {
  name = 'GPTNeoX', n_positions = 'max_position_embeddings', n_layer = 'num_hidden_layers',
  n_head = 'num_attention_heads', n_embd = 'hidden_size', act = 'hidden_act',
  body = 'gpt_neox', wte = 'embed_in', blocks = 'layers', ln_f = 'final_layer_norm', head = 'embed_out',
  embed = function(body, idx) return body.emb_dropout(body.embed_in(idx)) end,
}

function N.resolve_config(cfg)
  if type(cfg) == 'table' and cfg.rope_scaling ~= nil and cfg.rope_scaling ~= require('cjson').null then
    raise("nn.GPTNeoX: config field 'rope_scaling' is not supported (only plain rotary embeddings)")
  end
  local c = causal_lm.resolve_config(LAYOUT, cfg, FIELDS, IGNORED, ALIASES)
  local d = c.hidden_size / c.num_attention_heads
  c.rotary_ndims = math.floor(d * c.rotary_pct)
  if c.rotary_ndims % 2 ~= 0 then
    raise(string.format('nn.GPTNeoX: rotary dims (head size %d x rotary_pct %g = %d) must be even', d, c.rotary_pct,
      c.rotary_ndims))
  end
  return c
end

-- ---- rotary tables ----
local f32 = ffi.new('float[1]')
local function round32(x)
  f32[0] = x
  return f32[0]
end

-- cos, sin [n_pos, 1, D] (D = head size; 1 and 0 past the rotary dims) and R [D, D], in dtype.
local function rotary_tables(n_pos, D, R, base, dtype)
  local half = R / 2
  local inv = {}
  for i = 0, half - 1 do
    inv[i] = round32(1 / round32(base ^ round32(round32(2 * i) / R)))
  end
  local cos, sin = {}, {}
  for t = 0, n_pos - 1 do
    local c, s = {}, {}
    for j = 0, D - 1 do
      if j < R then
        local a = round32(t * inv[j % half])
        c[j + 1], s[j + 1] = round32(math.cos(a)), round32(math.sin(a))
      else
        c[j + 1], s[j + 1] = 1, 0
      end
    end
    cos[t + 1], sin[t + 1] = { c }, { s }
  end
  local rot = {}
  for i = 1, D do
    rot[i] = {}
    for j = 1, D do rot[i][j] = 0 end
  end
  for j = 0, half - 1 do
    rot[j + half + 1][j + 1] = -1  -- out[j] = -x[j + half]
    rot[j + 1][j + half + 1] = 1   -- out[j + half] = x[j]
  end
  local o = { dtype = dtype }
  return creation.tensor(cos, o), creation.tensor(sin, o), creation.tensor(rot, o)
end

-- ---- attention ----
local Attention = module.class('GPTNeoXAttention')

function Attention.new(c, o)
  local self = module.new(Attention)
  local C = c.hidden_size
  self.n_head, self.head_dim = c.num_attention_heads, C / c.num_attention_heads
  self.scale = 1 / math.sqrt(self.head_dim)
  self.rotary = o.rotary
  local lin = { std = c.initializer_range, generator = o.generator, init = o.init, bias = c.attention_bias }
  self:add_module('query_key_value', L.Linear(C, 3 * C, lin))
  self:add_module('dense', L.Linear(C, C, lin))
  self:add_module('attention_dropout', L.Dropout(c.attention_dropout, { generator = o.dropout_generator }))
  return self
end

-- Rotary embedding of x [B, T, H, D] for positions pos0 .. pos0 + T - 1.
function Attention:rope(x, pos0)
  local cos, sin, rot = self.rotary(x.dtype, x.device)
  local tn = tonumber(x.dims[1])
  cos, sin = T.narrow(cos, 1, pos0 + 1, tn), T.narrow(sin, 1, pos0 + 1, tn)
  return T.add(T.mul(x, cos), T.mul(T.matmul(x, rot), sin))
end

function Attention:forward(x, cache)
  local B, Tn, C = tonumber(x.dims[0]), tonumber(x.dims[1]), tonumber(x.dims[2])
  local H, D = self.n_head, self.head_dim
  -- q, k, v each from its own rows of the interleaved weight ([H, 3, D, C] -> select):
  -- copies of [C, C] weights instead of zero tensors of the activation in the backward.
  local W, b = T.view(self.query_key_value.weight, H, 3, D, C), self.query_key_value.bias
  if b then b = T.view(b, H, 3, D) end
  local pos0 = cache and cache.cache.len or 0
  local out = {}
  for j = 1, 3 do
    local y = F.linear(x, T.reshape(T.select(W, 2, j), C, C), b and T.reshape(T.select(b, 2, j), C) or nil)
    y = T.view(y, B, Tn, H, D)
    if j < 3 and self.rotary_ndims ~= 0 then y = self:rope(y, pos0) end
    out[j] = T.transpose(y, 2, 3)
  end
  return self.dense(causal_lm.attend(out[1], out[2], out[3], cache, self.scale, self.attention_dropout))
end

-- ---- MLP ----
local MLP = module.class('GPTNeoXMLP')

function MLP.new(c, o)
  local self = module.new(MLP)
  local lin = { std = c.initializer_range, generator = o.generator, init = o.init }
  self:add_module('dense_h_to_4h', L.Linear(c.hidden_size, c.intermediate_size, lin))
  self:add_module('dense_4h_to_h', L.Linear(c.intermediate_size, c.hidden_size, lin))
  self.act = activations.get(c.hidden_act, 'nn.GPTNeoX')
  return self
end

function MLP:forward(x) return self.dense_4h_to_h(self.act(self.dense_h_to_4h(x))) end

-- ---- Layer ----
local Layer = module.class('GPTNeoXLayer')

function Layer.new(c, o)
  local self = module.new(Layer)
  self.parallel = c.use_parallel_residual
  local ln = { eps = c.layer_norm_eps, init = o.init }
  self:add_module('input_layernorm', L.LayerNorm(c.hidden_size, ln))
  self:add_module('post_attention_layernorm', L.LayerNorm(c.hidden_size, ln))
  self:add_module('post_attention_dropout', L.Dropout(c.hidden_dropout, { generator = o.dropout_generator }))
  self:add_module('post_mlp_dropout', L.Dropout(c.hidden_dropout, { generator = o.dropout_generator }))
  self:add_module('attention', Attention.new(c, o))
  self.attention.rotary_ndims = c.rotary_ndims
  self:add_module('mlp', MLP.new(c, o))
  return self
end

function Layer:forward(x, cache)
  local a = self.post_attention_dropout(self.attention(self.input_layernorm(x), cache))
  if self.parallel then
    local m = self.post_mlp_dropout(self.mlp(self.post_attention_layernorm(x)))
    return T.add(T.add(m, a), x)
  end
  a = T.add(a, x)
  return T.add(self.post_mlp_dropout(self.mlp(self.post_attention_layernorm(a))), a)
end

N.Attention, N.MLP, N.Layer = Attention, MLP, Layer

local Body = module.class('GPTNeoXModel')

-- ---- GPTNeoX ----
local GPTNeoX = module.class('GPTNeoX')
N.GPTNeoX = GPTNeoX

-- GPTNeoX(config[, {generator =, dropout_generator =, init = true}]): as nn.GPT. Init as
-- Hugging Face: Linear and Embedding weights N(0, initializer_range), biases 0.
function GPTNeoX.new(cfg, opts)
  local self, c, o = causal_lm.new(GPTNeoX, LAYOUT, N.resolve_config, cfg, opts)
  local D = c.hidden_size / c.num_attention_heads
  local tables = {}
  -- cos, sin, R for a dtype and device, made on first use
  local function rotary(dtype, device)
    device = device or 'cpu'
    local key = dtype .. ':' .. device
    if not tables[key] then
      local t = { rotary_tables(c.max_position_embeddings, D, c.rotary_ndims, c.rotary_emb_base, dtype) }
      if device ~= 'cpu' then
        for i = 1, 3 do t[i] = T.to(t[i], device) end
      end
      tables[key] = t
    end
    local t = tables[key]
    return t[1], t[2], t[3]
  end
  local lo = { generator = o.generator, init = o.init, dropout_generator = self.generator, rotary = rotary }
  local body = module.new(Body)
  local emb = { std = c.initializer_range, generator = o.generator, init = o.init }
  body:add_module('embed_in', L.Embedding(c.vocab_size, c.hidden_size, emb))
  body:add_module('emb_dropout', L.Dropout(c.hidden_dropout, { generator = self.generator }))
  local layers = module.ModuleList()
  for _ = 1, c.num_hidden_layers do layers:append(Layer.new(c, lo)) end
  body:add_module('layers', layers)
  body:add_module('final_layer_norm', L.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps, init = o.init }))
  self:add_module('gpt_neox', body)
  self:add_module('embed_out', common.lm_head(c.hidden_size, c.vocab_size,
    c.tie_word_embeddings and body.embed_in.weight or nil, emb))
  return self
end

-- hidden, forward (model(idx[, targets[, {mask =, ignore_index = -100}]]) -> logits, loss, as
-- nn.GPT), new_cache, forward_cached, max_positions
causal_lm.install(GPTNeoX, LAYOUT)

-- Hugging Face checkpoints carry buffers (attention.bias, attention.masked_bias,
-- rotary_emb.inv_freq) that are not parameters: dropped.
function GPTNeoX.normalize_state_dict(_, sd)
  return causal_lm.drop_buffers(sd, { '%.attention%.bias$', '%.attention%.masked_bias$', 'rotary_emb%.inv_freq$' })
end

return N
