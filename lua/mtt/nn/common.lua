-- mtt.nn.common: what the GPT layouts share: id and target arguments, the loss, causal
-- attention (fused, or step by step when the probabilities get dropout), the key/value cache
-- for generation, the output head.
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local creation = require 'mtt.creation'
local random = require 'mtt.random'
local autograd = require 'mtt.autograd'
local F = require 'mtt.functional'
local module = require 'mtt.nn.module'
local L = require 'mtt.nn.layers'

local T, is_tensor = tensor.methods, tensor.is_tensor
local raise = U.raise

local M = {}

-- ids: i32 tensor [B, T] or [T] (one sequence), or a Lua list of 0-based ids -> [B, T], on
-- `device` if given.
function M.ids(idx, fname, what, device)
  what = what or 'idx'
  if type(idx) == 'table' and not is_tensor(idx) then
    if type(idx[1]) == 'table' then idx = creation.tensor(idx, { dtype = 'i32' })
    else idx = creation.tensor({ idx }, { dtype = 'i32' }) end
  end
  if not is_tensor(idx) then
    raise(string.format('%s: %s must be an i32 tensor or a list of ids, got %s', fname, what, type(idx)))
  end
  if idx.dtype ~= 'i32' then raise(string.format('%s: %s must be i32 (token ids), got %s', fname, what, idx.dtype)) end
  if idx.ndim == 1 then idx = T.unsqueeze(idx, 1) end
  if idx.ndim ~= 2 or tonumber(idx.dims[1]) < 1 then
    raise(string.format('%s: %s must be [B, T] with T >= 1, got shape %s', fname, what, U.tshape(idx)))
  end
  if device and idx.device ~= device then idx = T.to(idx, device) end
  return idx
end

-- Mean cross-entropy of logits [B, T, V] against targets [B, T] (nil without targets).
function M.loss(logits, targets, opts, fname)
  if targets == nil then
    if opts ~= nil then raise(fname .. ': loss options given without targets') end
    return nil
  end
  targets = M.ids(targets, fname, 'targets', logits.device)
  if U.shape_str({ tonumber(logits.dims[0]), tonumber(logits.dims[1]) }) ~= U.tshape(targets) then
    raise(string.format('%s: targets %s do not match the input [%d,%d]', fname, U.tshape(targets),
      tonumber(logits.dims[0]), tonumber(logits.dims[1])))
  end
  if opts and is_tensor(opts.mask) and opts.mask.device ~= logits.device then
    opts = { mask = T.to(opts.mask, logits.device), ignore_index = opts.ignore_index }
  end
  return F.cross_entropy(logits, targets, opts)
end

-- Causal masks [tq, tk] (1 where a query may not look: key j > i + tk - tq), kept per size
-- and device.
local masks = setmetatable({}, { __mode = 'v' })
local function causal_mask(tq, tk, device)
  local key = tq .. ':' .. tk .. ':' .. device
  local m = masks[key]
  if not m then
    local i = T.view(creation.arange(tk - tq, tk, { dtype = 'i32' }), tq, 1)
    local j = T.view(creation.arange(0, tk, { dtype = 'i32' }), 1, tk)
    m = T.gt(j, i)
    if device ~= 'cpu' then m = T.to(m, device) end
    masks[key] = m
  end
  return m
end
M.causal_mask = causal_mask

-- Causal attention of q [B, H, Tq, D] over k, v [B, H, Tk, D] (Tk >= Tq: the queries are
-- the last Tq positions). The fused kernel unless dropout on the probabilities is active.
function M.attention(q, k, v, scale, dropout)
  if not (dropout and dropout.training and dropout.p > 0) then
    return F.attention(q, k, v, { causal = true, scale = scale })
  end
  local tq, tk = tonumber(q.dims[2]), tonumber(k.dims[2])
  local s = T.mul(T.matmul(q, T.transpose(k, -2, -1)), scale)
  s = T.masked_fill(s, causal_mask(tq, tk, s.device), -math.huge)
  return T.matmul(dropout(T.softmax(s, -1)), v)
end

-- ---- key/value cache ----
-- {len = positions cached, max_len =, layers = {{k =, v =, cache =}, ...}}; buffers
-- [B, H, max_len, D] in the model's dtype.
function M.new_cache(model, n_layer, batch, n_head, max_len, head_dim)
  for what, v in pairs({ batch = batch, max_len = max_len }) do
    if not U.is_int(v) or v < 1 then
      raise(string.format('new_cache: %s must be an integer >= 1, got %s', what, tostring(v)))
    end
  end
  local p = model:parameters()[1]
  local o = { dtype = p.dtype, device = p.device }
  local cache = { len = 0, max_len = max_len, batch = batch, layers = {} }
  for i = 1, n_layer do
    cache.layers[i] = { cache = cache, k = creation.zeros({ batch, n_head, max_len, head_dim }, o),
      v = creation.zeros({ batch, n_head, max_len, head_dim }, o) }
  end
  return cache
end

-- Appends k, v [B, H, Tn, D] at the cache's current length; returns views of everything
-- cached so far (the cache's len is advanced by the model after its last layer).
function M.cache_append(lc, k, v)
  local cache = lc.cache
  local pos0, tn = cache.len, tonumber(k.dims[2])
  if pos0 + tn > cache.max_len then
    raise(string.format('forward_cached: %d positions (%d cached + %d new) exceed the cache size %d', pos0 + tn, pos0,
      tn, cache.max_len))
  end
  if tonumber(k.dims[0]) ~= cache.batch then
    raise(string.format('forward_cached: batch %d does not match the cache (%d)', tonumber(k.dims[0]), cache.batch))
  end
  autograd.no_grad(function()
    T.copy_(T.narrow(lc.k, 3, pos0 + 1, tn), k)
    T.copy_(T.narrow(lc.v, 3, pos0 + 1, tn), v)
  end)
  return T.narrow(lc.k, 3, 1, pos0 + tn), T.narrow(lc.v, 3, 1, pos0 + tn)
end

-- ---- the output head ----
-- A bias-free Linear(n_in, n_out) holding `tied` (the token embedding) or its own weight
-- ~ N(0, o.std).
function M.lm_head(n_in, n_out, tied, o)
  if not tied then
    return L.Linear(n_in, n_out, { bias = false, generator = o.generator, init = o.init, std = o.std })
  end
  local head = module.new(L.Linear)
  head.in_features, head.out_features = n_in, n_out
  head:register_parameter('weight', tied)
  return head
end

-- A generator seeded by a draw from gen (the default generator if nil).
function M.derived_generator(gen)
  local seed = creation.randint(0, 2 ^ 31 - 1, { 1 }, { generator = gen })[1]
  return random.Generator(seed)
end

return M
