-- mtt.repl.model: a model to talk to: :load puts a model and its tokenizer into the globals
-- `model` and `tok`; :gen continues a text; :score gives the log-likelihood of continuations.
-- :gen and :score use whatever the globals hold, so a model built by hand works too.
--
--   M.load(path[, step]) -> model, tok, info   (info: {path =, kind = 'model'|'checkpoint', step =})
--   M.generate(model, tok, text, {max_new_tokens =, temperature =, top_k =, seed =, write =,
--     stop_at_eot = true}) -> new ids, why ('eot' | 'length'); write(text) receives each
--     token's text as it comes
--   M.score(model, tok, prompt, continuation) -> {logprobs = {...}, ids = {...}, top = {...},
--     rank = {...}, sum =, n =, truncated =}
jit.off(true, true) -- the token loop runs in the interpreter, where Ctrl-C is seen
local U = require 'mtt.util'
local io_ = require 'mtt.io'
local nn = require 'mtt.nn'
local generate = require 'mtt.nn.generate'
local creation = require 'mtt.creation'
local autograd = require 'mtt.autograd'
local checkpoint = require 'mtt.checkpoint'
local tokenizer = require 'mtt.tokenizer'
local repl = require 'mtt.repl'
local common = require 'mtt.repl.common'
local now = require('mtt.train.progress').now -- wall-clock seconds

local raise = U.raise
local M = {}

local function read_json(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local text = f:read('*a')
  f:close()
  local ok, v = pcall(require('cjson').new().decode, text)
  if not ok or type(v) ~= 'table' then raise('mtt.repl: ' .. path .. ' is not valid JSON') end
  return v
end

-- ---- :load ----
local function class_of_hf(cfg)
  local arch = type(cfg.architectures) == 'table' and tostring(cfg.architectures[1]) or ''
  if cfg.model_type == 'gpt_neox' or arch:match('NeoX') then return nn.GPTNeoX, 'GPTNeoX' end
  return nn.GPT, 'GPT'
end

local function find_tokenizer(dirs)
  for _, d in ipairs(dirs) do
    local p = d .. '/tokenizer.json'
    if common.exists(p) then return tokenizer.load(p), p end
  end
  raise('mtt.repl: :load: no tokenizer.json in ' .. table.concat(dirs, ' or '))
end

local function from_model_dir(dir)
  local cfg = read_json(dir .. '/config.json')
  local cls = class_of_hf(cfg)
  local model = cls(dir .. '/config.json', { init = false })
  local sd = io_.load_safetensors(dir .. '/model.safetensors')
  model:load_state_dict(sd)
  local tok = find_tokenizer({ dir, common.dirname(dir) })
  return model, tok, { path = dir, kind = 'model' }
end

local function from_checkpoint(run_dir, path, step)
  local cfg = read_json(run_dir .. '/config.json')
  if not cfg or type(cfg.model) ~= 'table' or type(cfg.model.config) ~= 'table' then
    raise('mtt.repl: :load: ' .. run_dir .. '/config.json does not describe the model (model.class, model.config)')
  end
  local cls = nn[cfg.model.class or 'GPT']
  if not cls then raise('mtt.repl: :load: unknown model class ' .. tostring(cfg.model.class)) end
  local model = cls(cfg.model.config, { init = false })
  local ck = checkpoint.load(path)
  model:load_state_dict(require('mtt.train').model_state(ck)) -- without the optimizer's moments
  local tok = find_tokenizer({ run_dir, run_dir .. '/model' })
  return model, tok, { path = path, kind = 'checkpoint', step = step or ck.state.step }
end

function M.load(arg, step)
  local path = common.find_path(arg, ':load')
  if step ~= nil and not U.is_int(step) then
    raise('mtt.repl: :load: the step must be an integer, got ' .. tostring(step))
  end
  if not common.is_dir(path) then
    if not path:match('%.safetensors$') then
      raise('mtt.repl: :load: ' .. path .. ' is neither a folder nor a .safetensors file')
    end
    local dir = common.dirname(path)
    if common.basename(path) == 'model.safetensors' and common.exists(dir .. '/config.json') then
      return from_model_dir(dir)
    end
    if common.basename(dir) == 'ckpt' then return from_checkpoint(common.dirname(dir), path) end
    raise('mtt.repl: :load: ' .. path .. ' is not a model.safetensors next to a config.json, nor in a run\'s '
      .. 'ckpt/ folder')
  end
  if step == nil and common.exists(path .. '/config.json') and common.exists(path .. '/model.safetensors') then
    return from_model_dir(path)
  end
  local list = checkpoint.list(path .. '/ckpt')
  if step ~= nil then
    for _, c in ipairs(list) do if c.step == step then return from_checkpoint(path, c.path, step) end end
    local steps = {}
    for _, c in ipairs(list) do steps[#steps + 1] = tostring(c.step) end
    raise(string.format('mtt.repl: :load: %s has no checkpoint of step %d (steps: %s)', path, step,
      #steps > 0 and table.concat(steps, ', ') or 'none'))
  end
  if common.exists(path .. '/model/config.json') then return from_model_dir(path .. '/model') end
  local latest, s = checkpoint.latest(path .. '/ckpt')
  if latest then return from_checkpoint(path, latest, s) end
  raise('mtt.repl: :load: ' .. path .. ' has no model (config.json + model.safetensors), model/ or ckpt/')
end

local function describe(model)
  local c = model.config or {}
  return string.format('%s, %d parameters, %s layers, width %s, %s heads, %d positions, vocabulary %s',
    model.__name or '?', model:num_parameters(), common.num(c.n_layer or c.num_hidden_layers),
    common.num(c.n_embd or c.hidden_size), common.num(c.n_head or c.num_attention_heads), model:max_positions(),
    common.num(c.vocab_size))
end

local function cmd_load(_, words)
  if not words[1] then raise('mtt.repl: :load RUN_OR_CKPT_OR_MODEL_DIR [step]: give a path or a run name') end
  local step = words[2] and
    (tonumber(words[2]) or raise('mtt.repl: :load: the step must be a number, got ' .. words[2]))
  local model, tok, info = M.load(words[1], step)
  model:eval()
  rawset(_G, 'model', model)
  rawset(_G, 'tok', tok)
  M.info = info
  print(string.format('loaded %s%s', info.path, info.step and string.format(' (step %d)', info.step) or ''))
  print('  model: ' .. describe(model))
  print(string.format('  tok:   %s, eot %d', tostring(tok), tok.eot_id))
  print('  globals `model` and `tok` are set; try :gen TEXT, :score PROMPT ||| CONTINUATION, model:summary()')
end

-- ---- the globals ----
local function need_model(what)
  local model, tok = rawget(_G, 'model'), rawget(_G, 'tok')
  if type(model) ~= 'table' or type(model.max_positions) ~= 'function' then
    raise('mtt.repl: ' .. what .. ': no model loaded (:load RUN, or set the globals model and tok)')
  end
  if type(tok) ~= 'table' or type(tok.encode) ~= 'function' then
    raise('mtt.repl: ' .. what .. ': the global `tok` is not a tokenizer (:load sets it)')
  end
  return model, tok
end

-- "\n" and "\t" typed in a command stand for a newline and a tab
local function unescape(s)
  return (s:gsub('\\([nt\\])', { n = '\n', t = '\t', ['\\'] = '\\' }))
end

-- the token loop below stays here (interpreted, so Ctrl-C is seen); its pieces are mtt.nn.generate's
local ids_tensor, pick = generate.ids_tensor, generate.pick

-- ---- :gen ----
function M.generate(model, tok, text, opts)
  opts = opts or {}
  local max_new, temperature = opts.max_new_tokens or 32, opts.temperature or 0
  local gen = opts.seed and require('mtt.random').Generator(opts.seed) or nil
  local write = opts.write or function() end
  local ids = tok:encode(text)
  if #ids == 0 then ids = { tok.eot_id } end -- from the start of a document
  local limit = model:max_positions()
  local new, why = {}, 'length'
  local was_training = model.training
  model:eval()
  local ok, err = pcall(autograd.no_grad, function()
    if max_new == 0 then return end
    local cache = model:new_cache(1, math.min(limit, #ids + max_new))
    local logits = model:forward_cached(ids_tensor(ids, math.max(1, #ids - limit + 1), #ids), cache, true)
    while true do
      local id = pick(logits:select(1, 1), temperature, opts.top_k, gen)
      if id == tok.eot_id and opts.stop_at_eot ~= false then why = 'eot'; return end
      ids[#ids + 1], new[#new + 1] = id, id
      write(tok:decode({ id }))
      if #new >= max_new then return end
      if cache.len >= cache.max_len then -- full: refill from the last ids, as model:generate does
        cache = model:new_cache(1, cache.max_len)
        logits = model:forward_cached(ids_tensor(ids, #ids - cache.max_len + 1, #ids), cache, true)
      else
        logits = model:forward_cached(ids_tensor(ids, #ids, #ids), cache, true)
      end
    end
  end)
  model:train(was_training)
  if not ok then error(err, 0) end
  return new, why
end

local GEN_FLAGS = { n = 'max_new_tokens', t = 'temperature', k = 'top_k', s = 'seed', e = 'eot' }

local function cmd_gen(rest)
  local model, tok = need_model(':gen')
  local o = { max_new_tokens = 32, temperature = 0 }
  while true do
    local f, v, more = rest:match('^%-(%a)%s+(%S+)%s*(.*)$')
    if not f or not GEN_FLAGS[f] then break end
    o[GEN_FLAGS[f]] = tonumber(v) or raise(string.format('mtt.repl: :gen: -%s needs a number, got %s', f, v))
    rest = more
  end
  if not U.is_int(o.max_new_tokens) or o.max_new_tokens < 0 then raise('mtt.repl: :gen: -n must be an integer >= 0') end
  if o.temperature < 0 then raise('mtt.repl: :gen: -t must be >= 0') end
  if o.top_k and (not U.is_int(o.top_k) or o.top_k < 1) then raise('mtt.repl: :gen: -k must be an integer >= 1') end
  o.stop_at_eot, o.eot = o.eot ~= 0, nil
  local text = unescape(rest)
  io.write(text)
  io.stdout:flush()
  local t0 = now()
  o.write = function(s) io.write(s); io.stdout:flush() end
  local ok, new, why = pcall(M.generate, model, tok, text, o)
  io.write('\n')
  if not ok then error(new, 0) end
  print(string.format('[%d new tokens, %s; %s%s; %.2f s]', #new, why == 'eot' and 'stopped at <eot>' or 'length limit',
    o.temperature == 0 and 'greedy' or ('temperature ' .. o.temperature), o.top_k and (', top_k ' .. o.top_k) or '',
    now() - t0))
end

-- ---- :score ----
function M.score(model, tok, prompt, continuation)
  local p_ids = tok:encode(prompt)
  if #p_ids == 0 then p_ids = { tok.eot_id } end -- the first token is scored after <eot>
  local c_ids = tok:encode(continuation)
  if #c_ids == 0 then raise('mtt.repl: :score: the continuation is empty') end
  local limit = model:max_positions()
  if #c_ids > limit then
    raise(string.format('mtt.repl: :score: the continuation has %d tokens, the model sees at most %d', #c_ids, limit))
  end
  local all = {}
  for _, v in ipairs(p_ids) do all[#all + 1] = v end
  for _, v in ipairs(c_ids) do all[#all + 1] = v end
  local first = math.max(1, #all - limit) -- keep the last limit + 1 ids: limit inputs, limit targets
  local n_in = #all - first
  local targets = {}
  for i = first + 1, #all do targets[#targets + 1] = { all[i] } end
  local was_training = model.training
  model:eval()
  local ok, res = pcall(autograd.no_grad, function()
    local logits = model(ids_tensor(all, first, #all - 1))
    local lp = logits:log_softmax(-1)
    local got = lp:gather(3, creation.tensor({ targets }, { dtype = 'i32' })):to('cpu'):totable()[1]
    local top = lp:argmax(-1):to('cpu'):totable()[1]
    local r = { logprobs = {}, ids = c_ids, top = {}, rank = {}, sum = 0, n = #c_ids, truncated = first > 1 }
    for j = n_in - #c_ids + 1, n_in do
      local v = got[j][1]
      r.logprobs[#r.logprobs + 1] = v
      r.top[#r.top + 1] = top[j]
      r.rank[#r.rank + 1] = lp:select(1, 1):select(1, j):gt(v):sum():item() + 1
      r.sum = r.sum + v
    end
    return r
  end)
  model:train(was_training)
  if not ok then error(res, 0) end
  return res
end

local function quote_token(s) return (string.format('%q', s):gsub('\\\n', '\\n')) end

local function cmd_score(rest)
  local model, tok = need_model(':score')
  local parts = {}
  for piece in (rest .. '|||'):gmatch('(.-)|||') do parts[#parts + 1] = piece end
  local prompt, conts = '', {}
  if #parts == 1 then -- no |||: the whole text, after <eot>
    conts[1] = unescape(parts[1])
  else
    prompt = unescape(parts[1]:gsub('%s+$', ''):gsub('^%s+', ''))
    for i = 2, #parts do
      local c = parts[i]
      local lead = c:match('^%s') and ' ' or ''
      c = c:gsub('^%s+', ''):gsub('%s+$', '')
      if c ~= '' then conts[#conts + 1] = unescape(lead .. c) end
    end
  end
  if #conts == 0 then raise('mtt.repl: :score PROMPT ||| CONTINUATION [||| ANOTHER...]: no continuation given') end
  if #conts == 1 then
    local r = M.score(model, tok, prompt, conts[1])
    local rows = {}
    for j, id in ipairs(r.ids) do
      rows[#rows + 1] = { quote_token(tok:decode({ id })), r.logprobs[j], r.rank[j],
        quote_token(tok:decode({ r.top[j] })) }
    end
    print(common.table({ 'token', 'logprob', 'rank', 'model\'s top token' }, rows))
    print(string.format('log-likelihood %.4f over %d tokens (mean %.4f, perplexity %.3g)%s', r.sum, r.n, r.sum / r.n,
      math.exp(-r.sum / r.n), r.truncated and '; the prompt was cut to the model\'s positions' or ''))
    return
  end
  local rows, best_sum, best_mean = {}, 1, 1
  local results = {}
  for i, c in ipairs(conts) do
    local r = M.score(model, tok, prompt, c)
    results[i] = r
    if r.sum > results[best_sum].sum then best_sum = i end
    if r.sum / r.n > results[best_mean].sum / results[best_mean].n then best_mean = i end
  end
  for i, c in ipairs(conts) do
    local r = results[i]
    local mark = (i == best_sum and 'sum' or '')
      .. (i == best_mean and (i == best_sum and ', per token' or 'per token') or '')
    rows[#rows + 1] = { i, quote_token(c), r.n, r.sum, r.sum / r.n, mark }
  end
  print(common.table({ '#', 'continuation', 'tokens', 'logprob', 'per token', 'best' }, rows))
end

repl.register { name = 'load', usage = 'RUN|CKPT|MODEL_DIR [step]',
  help = 'load a model and its tokenizer into the globals model, tok',
  details = 'A model folder (config.json, model.safetensors, tokenizer.json), a run (its model/, else its newest\n'
    .. 'checkpoint, or the checkpoint of [step]) or a checkpoint file runs/X/ckpt/step-N.safetensors.',
  run = cmd_load,
  complete = function(i, arg)
    if i ~= 1 then return {} end
    return common.complete_path(arg, { runs = true, filter = function(n, d) return d or n:match('%.safetensors$') end })
  end }
repl.register { name = 'gen', usage = '[-n N] [-t TEMP] [-k TOPK] [-s SEED] [-e 0] text',
  help = 'continue a text with the loaded model (greedy unless -t)',
  details = 'Writes the tokens as they come; stops at <eot> (-e 0: goes on) or after N tokens (default 32).\n'
    .. '\\n in the text is a newline. Ctrl-C stops it; the model and globals stay as they were.',
  run = cmd_gen }
repl.register { name = 'score', usage = 'prompt ||| continuation [||| another...]',
  help = 'log-likelihood of continuations after a prompt',
  details = 'One continuation: each token\'s log-probability, its rank and the model\'s top token; several: a\n'
    .. 'ranking (rank classification). A space after ||| starts the continuation with a space. Without |||,\n'
    .. 'the whole text is scored after <eot>.',
  run = cmd_score }

return M
