-- mtt.nn.causal_lm: the model-level plumbing of the GPT layouts (gpt2.lua, gpt_neox.lua),
-- written once. A layout names its config fields and submodules in a table and gets the
-- checked config, the constructor's first steps and the methods hidden, forward, new_cache,
-- forward_cached, max_positions. (mtt.nn.common holds the pieces below the model: ids, loss,
-- attention, the cache buffers, the head.)
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local F = require 'mtt.functional'
local autograd = require 'mtt.autograd'
local module = require 'mtt.nn.module'
local config = require 'mtt.nn.config'
local activations = require 'mtt.nn.activations'
local common = require 'mtt.nn.common'

local T = tensor.methods
local raise = U.raise

local M = {}

-- A layout: {name = 'GPT' (in messages: name, and 'nn.' .. name for config and options),
--   n_positions =, n_layer =, n_head =, n_embd =, act = (config field names),
--   body =, wte =, blocks =, ln_f =, head = (submodule names: the transformer body, in it the
--   token embedding, the block list and the final norm; the output head beside the body),
--   embed = function(body, idx, pos0, Tn) -> the input of the first block [B, T, C]}

-- config.resolve, then the checks every layout needs: whole heads, a known activation.
function M.resolve_config(lay, cfg, fields, ignored, aliases)
  local fname = 'nn.' .. lay.name
  local c = config.resolve(fname, cfg, fields, ignored, aliases)
  if c[lay.n_embd] % c[lay.n_head] ~= 0 then
    raise(string.format('%s: %s (%d) must be a multiple of %s (%d)', fname, lay.n_embd, c[lay.n_embd], lay.n_head,
      c[lay.n_head]))
  end
  activations.get(c[lay.act], fname)
  return c
end

-- The constructor's first steps: checked options and config, the model with its config and
-- its dropout generator (o.dropout_generator, else seeded from o.generator, so that
-- mtt.manual_seed(s) fixes both). Returns self, c, o.
function M.new(cls, lay, resolve, cfg, opts)
  local o = options.check('nn.' .. lay.name, opts, 'generator:generator dropout_generator:generator init:boolean')
  local c = resolve(cfg)
  local self = module.new(cls)
  self.config = c
  self.generator = o.dropout_generator or common.derived_generator(o.generator)
  return self, c, o
end

-- The attention's common tail: q [B, H, T, D] over k, v (appended to the layer cache first,
-- when there is one), heads merged back -> [B, T, C].
function M.attend(q, k, v, cache, scale, dropout)
  local B, H, Tn, D = tonumber(q.dims[0]), tonumber(q.dims[1]), tonumber(q.dims[2]), tonumber(q.dims[3])
  if cache then k, v = common.cache_append(cache, k, v) end
  local y = common.attention(q, k, v, scale, dropout)
  return T.reshape(T.transpose(y, 2, 3), B, Tn, H * D)
end

-- Adds the model-level methods to cls.
function M.install(cls, lay)
  local name = lay.name

  -- Hidden states after the final norm. idx i32 [B, T]; with a cache, positions continue after it.
  function cls:hidden(idx, cache)
    local c, body = self.config, self[lay.body]
    local device = body[lay.wte].weight.device
    local Tn = tonumber(idx.dims[1])
    local pos0 = cache and cache.len or 0
    local npos = c[lay.n_positions]
    if idx.device ~= device then idx = T.to(idx, device) end
    if pos0 + Tn > npos then
      raise(string.format('%s: %d positions (%d cached + %d new) exceed %s %d', name, pos0 + Tn, pos0, Tn,
        lay.n_positions, npos))
    end
    local x = lay.embed(body, idx, pos0, Tn)
    local blocks = body[lay.blocks]
    for i = 1, blocks.n do x = blocks[i](x, cache and cache.layers[i]) end
    if cache then cache.len = pos0 + Tn end
    return body[lay.ln_f](x)
  end

  -- model(idx[, targets[, {mask =, ignore_index = -100}]]) -> logits [B, T, V], loss (mean
  -- cross-entropy over the counted positions; nil without targets). targets are the next ids
  -- (already shifted), i32 [B, T]; positions with target ignore_index or mask 0 do not count.
  function cls:forward(idx, targets, opts)
    idx = common.ids(idx, name)
    local logits = F.linear(self:hidden(idx), self[lay.head].weight)
    return logits, common.loss(logits, targets, opts, name)
  end

  -- ---- generation support (mtt.nn.generate) ----
  -- new_cache(batch, max_len): keys and values for up to max_len positions (the model's at most).
  function cls:new_cache(batch, max_len)
    local c = self.config
    local npos = c[lay.n_positions]
    max_len = math.min(max_len or npos, npos)
    return common.new_cache(self, c[lay.n_layer], batch, c[lay.n_head], max_len, c[lay.n_embd] / c[lay.n_head])
  end

  -- forward_cached(idx, cache[, last_only]): logits [B, T, V] of the new positions (or [B, V] of
  -- the last one), appending to the cache; runs without grad.
  function cls:forward_cached(idx, cache, last_only)
    idx = common.ids(idx, name)
    return autograd.no_grad(function()
      local h = self:hidden(idx, cache)
      if last_only then h = T.select(h, 2, -1) end
      return F.linear(h, self[lay.head].weight)
    end)
  end

  function cls:max_positions() return self.config[lay.n_positions] end
end

-- sd without the checkpoint buffers that are not parameters (keys matching one of the
-- patterns), each key renamed by rename(key) first when given.
function M.drop_buffers(sd, patterns, rename)
  local out = {}
  for k, v in pairs(sd) do
    local key, buffer = rename and rename(k) or k, false
    for _, p in ipairs(patterns) do
      if key:match(p) then buffer = true end
    end
    if not buffer then out[key] = v end
  end
  return out
end

return M
