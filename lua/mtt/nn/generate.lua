-- mtt.nn.generate: text generation with a key/value cache, for any model that has
-- new_cache(batch, max_len), forward_cached(idx, cache, last_only) and max_positions().
--
--   local new_ids, why = model:generate(prompt_ids, {max_new_tokens = 32, temperature = 0,
--                                        top_k = nil, stop = {{eot}}, generator = g})
--
-- prompt_ids: a Lua list of 0-based ids or an i32 tensor [T] or [1, T] (one sequence).
-- temperature 0 is greedy (argmax, first index on ties); > 0 samples from softmax(logits / t),
-- restricted to the top_k largest when top_k is given, with `generator` (the default
-- generator if nil). stop: a list of id sequences (a number stands for a one-id sequence);
-- generation ends after the first new ids that end with one of them, which are then left out
-- of the result. Returns the new ids (a Lua list) and why it ended: 'stop' or 'length'.
-- The model runs in eval mode (no dropout) and without grad; its mode is restored after.
-- A context longer than the model's positions keeps its last max_positions ids (the cache is
-- refilled from them when it runs full).
local ffi = require 'ffi'
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local creation = require 'mtt.creation'
local autograd = require 'mtt.autograd'

local T, is_tensor = tensor.methods, tensor.is_tensor
local raise = U.raise

local M = {}

local function prompt_list(prompt)
  if is_tensor(prompt) then
    if prompt.dtype ~= 'i32' then raise('generate: prompt must be i32 ids, got ' .. prompt.dtype) end
    if prompt.ndim == 2 and prompt.dims[0] == 1 then prompt = T.select(prompt, 1, 1) end
    if prompt.ndim ~= 1 then
      raise('generate: prompt must be one sequence ([T] or [1, T]), got shape ' .. U.tshape(prompt))
    end
    prompt = T.totable(prompt)
  end
  if type(prompt) ~= 'table' then
    raise('generate: prompt must be a list of ids or an i32 tensor, got ' .. type(prompt))
  end
  if #prompt == 0 then raise('generate: the prompt is empty') end
  local ids = {}
  for i, v in ipairs(prompt) do
    if not U.is_int(v) or v < 0 then
      raise(string.format('generate: prompt id %d is %s, expected an integer >= 0', i, tostring(v)))
    end
    ids[i] = v
  end
  return ids
end

local function stop_list(stop)
  if stop == nil then return {} end
  local out = {}
  for i, s in ipairs(stop) do
    if type(s) == 'number' then s = { s } end
    if type(s) ~= 'table' or #s == 0 then
      raise(string.format('generate: stop[%d] must be an id or a non-empty list of ids', i))
    end
    for _, v in ipairs(s) do
      if not U.is_int(v) then raise(string.format('generate: stop[%d] holds %s, expected ids', i, tostring(v))) end
    end
    out[#out + 1] = s
  end
  return out
end

-- Length of the stop sequence that `ids` ends with, or nil.
local function ends_with_stop(ids, stops)
  local n = #ids
  for _, s in ipairs(stops) do
    local m = #s
    if m <= n then
      local ok = true
      for j = 1, m do
        if ids[n - m + j] ~= s[j] then ok = false; break end
      end
      if ok then return m end
    end
  end
  return nil
end

-- list[from..to] as an i32 tensor [1, T] (one sequence): what forward_cached takes
local function ids_tensor(list, from, to)
  local t = {}
  for i = from, to do t[#t + 1] = list[i] end
  return creation.tensor({ t }, { dtype = 'i32' })
end

-- Next id from logits [V] (any float dtype): argmax when temperature is 0, else a draw from
-- softmax(logits / temperature), over the top_k largest when top_k is given.
local function pick(logits, temperature, top_k, gen)
  if temperature == 0 then return T.item(T.to(T.argmax(logits), 'cpu')) end
  local values, index = logits, nil
  if top_k then
    values, index = T.topk(logits, math.min(top_k, tonumber(logits.dims[0])))
    index = T.to(index, 'cpu')
  end
  -- read on the cpu, in f64
  local probs = T.contiguous(T.to(T.softmax(T.div(values, temperature), -1), { dtype = 'f64', device = 'cpu' }))
  local p = ffi.cast('double *', T.data_ptr(probs))
  local n = tonumber(probs.dims[0])
  local u = creation.rand({ 1 }, { generator = gen, dtype = 'f64' })[1]
  local acc, choice = 0, n - 1
  for i = 0, n - 1 do
    acc = acc + p[i]
    if u < acc then choice = i; break end
  end
  if index then return index[choice + 1] end
  return choice
end

M.ids_tensor, M.pick = ids_tensor, pick -- also used by mtt.eval.score and the REPL's :gen

function M.generate(model, prompt, opts)
  local o = options.check('generate', opts,
    'max_new_tokens:number temperature:number top_k:number stop:table generator:generator')
  local max_new = o.max_new_tokens or 16
  if not U.is_int(max_new) or max_new < 0 then
    raise('generate: max_new_tokens must be an integer >= 0, got ' .. tostring(max_new))
  end
  local temperature = o.temperature or 0
  if temperature < 0 or temperature ~= temperature then
    raise('generate: temperature must be >= 0, got ' .. tostring(temperature))
  end
  if o.top_k ~= nil and (not U.is_int(o.top_k) or o.top_k < 1) then
    raise('generate: top_k must be an integer >= 1, got ' .. tostring(o.top_k))
  end
  local ids, stops = prompt_list(prompt), stop_list(o.stop)
  local n_prompt = #ids
  local limit = model:max_positions()
  local was_training = model.training
  model:eval()
  local ok, new, why = pcall(autograd.no_grad, function()
    local new = {}
    if max_new == 0 then return new, 'length' end
    local cache = model:new_cache(1, math.min(limit, n_prompt + max_new))
    local from = math.max(1, #ids - limit + 1)
    local logits = model:forward_cached(ids_tensor(ids, from, #ids), cache, true)
    while true do
      local id = pick(T.select(logits, 1, 1), temperature, o.top_k, o.generator)
      ids[#ids + 1] = id
      new[#new + 1] = id
      local m = ends_with_stop(new, stops)
      if m then
        for _ = 1, m do new[#new] = nil end
        return new, 'stop'
      end
      if #new >= max_new then return new, 'length' end
      if cache.len >= cache.max_len then
        -- full: start again from the last limit - 1 ids, then add the new one
        cache = model:new_cache(1, cache.max_len)
        logits = model:forward_cached(ids_tensor(ids, #ids - cache.max_len + 1, #ids), cache, true)
      else
        logits = model:forward_cached(ids_tensor(ids, #ids, #ids), cache, true)
      end
    end
  end)
  model:train(was_training)
  if not ok then error(new, 0) end
  return new, why
end

return M
