-- mtt.nn: modules (mtt.nn.Module and the layers) and the GPT models, reached as mtt.nn.X.
--
-- Layers (torch's names and shapes): Linear(in, out[, {bias, std, generator, init}]) with
-- weight [out, in]; Conv1D(nf, nx) as Hugging Face's GPT-2 (weight [in, out]); Embedding(n, d);
-- LayerNorm(n[, {eps, elementwise_affine, bias}]); Dropout(p[, {generator}]); ModuleList.
-- Every module: m(...) = m:forward(...), parameters(), named_parameters() ({{name, tensor}},
-- tied tensors once), state_dict([{tied = false}]) (name -> tensor), state_dict_names(),
-- load_state_dict(sd[, {strict = true}]) -> missing, unexpected; train([mode]), eval(),
-- to(device | dtype), zero_grad(), num_parameters([{exclude_embeddings}]), summary().
-- New module types: local C = mtt.nn.module.class('Name'); function C.new(...) local self =
-- mtt.nn.module.new(C); self:add_module(name, m); self:register_parameter(name, t) ... end.
--
-- Models: GPT(config[, opts]) (GPT-2 layout, GPT2Config names) and GPTNeoX(config[, opts])
-- (Pythia, GPTNeoXConfig names); config is a table or a config.json path; opts: generator
-- (initial weights), dropout_generator (model.generator, default seeded from generator), init
-- = false. model(idx, targets[, {mask, ignore_index}]) -> logits [B, T, V], mean loss;
-- model:generate(prompt, {max_new_tokens, temperature, top_k, stop, generator}) -> new ids,
-- 'stop' | 'length'; model:new_cache(B, len) and model:forward_cached(idx, cache[, last_only]).
--
-- Files: module.lua (the base class), layers.lua, gpt2.lua, gpt_neox.lua, generate.lua
-- (generation with a key/value cache), config.lua (checked configs), activations.lua,
-- common.lua (the pieces the GPT layouts share below the model: ids, loss, attention, cache),
-- causal_lm.lua (their model-level methods: hidden, forward, new_cache, forward_cached).
local module = require 'mtt.nn.module'
local layers = require 'mtt.nn.layers'
local gpt2 = require 'mtt.nn.gpt2'
local gpt_neox = require 'mtt.nn.gpt_neox'
local generate = require 'mtt.nn.generate'

local nn = {
  Module = module.Module,
  ModuleList = module.ModuleList,
  module = module, -- class(name[, parent]) and new(cls), for new module types
  is_module = module.is_module,
  Linear = layers.Linear,
  Conv1D = layers.Conv1D,
  Embedding = layers.Embedding,
  LayerNorm = layers.LayerNorm,
  Dropout = layers.Dropout,
  GPT = gpt2.GPT,
  GPTNeoX = gpt_neox.GPTNeoX,
  generate = generate.generate,
  gpt2 = gpt2,         -- its parts: gpt2.Attention, gpt2.MLP, gpt2.Block (built from a resolved config)
  gpt_neox = gpt_neox, -- gpt_neox.Attention, gpt_neox.MLP, gpt_neox.Layer
}

gpt2.GPT.generate = generate.generate
gpt_neox.GPTNeoX.generate = generate.generate

return nn
