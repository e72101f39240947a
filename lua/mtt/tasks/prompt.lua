-- mtt.tasks.prompt: the three prompt encodings and their tokenization with a loss span.
--
--   'tk' (Tk-Instruct; demonstrations = the first k positive examples):
--     Definition: <definition>\n\n
--     Positive Example 1 -\nInput: <in>\nOutput: <out>\n\n          (k times)
--     Now complete the following example -\nInput: <input>\nOutput:
--   'id' (the study's "unique ID" encoding, no instruction; k demonstrations allowed):
--     <task name>\n  [Input: <in>\nOutput: <out>\n\n  (k times)]  Input: <input>\nOutput:
--   'exemplars' (k-shot):
--     Input: <in>\nOutput: <out>\n\n  (k times)  Input: <input>\nOutput:
-- The target is ' ' .. output (outputs[1] unless opts.output). For 'id' and 'exemplars' the k
-- demonstrations are drawn from task.train without the instance itself (compared by id), with
-- mulberry32 seeded by FNV-1a(seed .. ':' .. task.name .. ':' .. instance.id): the draw depends
-- on (seed, task, instance) only, never on call order. opts.demos replaces the draw (all of
-- them are used; k is then ignored). Fewer than k available: all of them (n_demos says).
--
-- Tokens: ids = encode(prompt) .. encode(target) .. eot (the text is data: special-token
-- strings inside it are encoded as plain text). With max_len, a sequence that is too long loses
-- (1) demonstrations, last first; then, the prompt being tokenized piece by piece, (2) the end
-- of the input (its start is kept and "\nOutput:" re-appended), (3) the end of the definition
-- ('tk') and (4) the end of the target, whose eot is then dropped too (truncated = true
-- reports any of 2-4). An error if even one target token cannot fit after the fixed frame.
local options = require 'mtt.options'
local U = require 'mtt.util'
local rng = require 'mtt.tasks.rng'

local raise = U.raise
local M = {}

local FORMATS = { tk = true, id = true, exemplars = true }
local PROMPT_OPTS = 'format:string k:number demos:table seed:number output:string'
local ENCODE_OPTS = PROMPT_OPTS .. ' max_len:number'
local SPLIT = { split_special_tokens = true }

local function check_args(fname, task, inst, o)
  if type(task) ~= 'table' or type(task.name) ~= 'string' then raise(fname .. ': task must be a Task') end
  if type(inst) ~= 'table' or type(inst.input) ~= 'string' then
    raise(fname .. ': instance must be a table with an input string (' .. task.name .. ')')
  end
  local fmt = o.format or 'tk'
  if not FORMATS[fmt] then raise(string.format("%s: unknown format '%s' (accepted: tk, id, exemplars)", fname, fmt)) end
  local k = o.k or 0
  if not U.is_int(k) or k < 0 then raise(fname .. ': k must be an integer >= 0, got ' .. tostring(k)) end
  local seed = o.seed or 0
  if not U.is_int(seed) then raise(fname .. ': seed must be an integer') end
  local output = o.output
  if output == nil then
    if type(inst.outputs) ~= 'table' or type(inst.outputs[1]) ~= 'string' then
      raise(fname .. ': instance has no outputs[1] and no output option was given (' .. task.name .. ')')
    end
    output = inst.outputs[1]
  end
  return fmt, k, seed, output
end

local function demo_output(fname, d, i)
  local out = d.output
  if out == nil and type(d.outputs) == 'table' then out = d.outputs[1] end
  if type(d.input) ~= 'string' or type(out) ~= 'string' then
    raise(string.format('%s: demos[%d] needs input and output (or outputs[1]) strings', fname, i))
  end
  return d.input, out
end

-- The demonstrations (as {input, output} pairs) for this instance.
local function demos_for(fname, task, inst, fmt, k, seed, given)
  local list = {}
  if given then
    for i, d in ipairs(given) do list[i] = { demo_output(fname, d, i) } end
    return list
  end
  if k == 0 then return list end
  if fmt == 'tk' then
    for i = 1, math.min(k, #task.positive_examples) do
      local e = task.positive_examples[i]
      list[i] = { e.input, e.output }
    end
    return list
  end
  local pool = {}
  for _, cand in ipairs(task.train or {}) do
    if cand ~= inst and (inst.id == nil or cand.id ~= inst.id) then pool[#pool + 1] = cand end
  end
  local r = rng.new(rng.hash(tostring(seed) .. ':' .. task.name .. ':' .. tostring(inst.id or inst.input)))
  for i, d in ipairs(r:sample(pool, math.min(k, #pool))) do list[i] = { d.input, d.outputs[1] } end
  return list
end

-- The prompt text with the first nd demonstrations.
local function render(task, fmt, demos, nd, input)
  local parts, sep = {}, '\n\n'
  if fmt == 'tk' then
    parts[1] = 'Definition: ' .. task.definition
    for i = 1, nd do
      parts[#parts + 1] = string.format('Positive Example %d -\nInput: %s\nOutput: %s', i, demos[i][1], demos[i][2])
    end
    parts[#parts + 1] = 'Now complete the following example -\nInput: ' .. input .. '\nOutput:'
    return table.concat(parts, sep)
  end
  for i = 1, nd do parts[i] = 'Input: ' .. demos[i][1] .. '\nOutput: ' .. demos[i][2] end
  parts[#parts + 1] = 'Input: ' .. input .. '\nOutput:'
  local body = table.concat(parts, sep)
  if fmt == 'id' then return task.name .. '\n' .. body end
  return body
end

-- mtt.tasks.prompt(task, instance[, opts]) -> prompt, target, n_demos
function M.prompt(task, inst, opts)
  local fname = 'mtt.tasks.prompt'
  local o = options.check(fname, opts, PROMPT_OPTS)
  local fmt, k, seed, output = check_args(fname, task, inst, o)
  local demos = demos_for(fname, task, inst, fmt, k, seed, o.demos)
  return render(task, fmt, demos, #demos, inst.input), ' ' .. output, #demos
end

-- The prompt without demonstrations as pieces, each tokenized alone; kinds: fixed, def, input.
local function pieces(task, fmt, input)
  if fmt == 'tk' then
    return { { 'fixed', 'Definition:' }, { 'def', ' ' .. task.definition },
      { 'fixed', '\n\nNow complete the following example -\nInput:' }, { 'input', ' ' .. input }, { 'fixed', '\nOutput:' } }
  elseif fmt == 'id' then
    return { { 'fixed', task.name }, { 'fixed', '\nInput:' }, { 'input', ' ' .. input }, { 'fixed', '\nOutput:' } }
  end
  return { { 'fixed', 'Input:' }, { 'input', ' ' .. input }, { 'fixed', '\nOutput:' } }
end

local function append(dst, src, n)
  for i = 1, n or #src do dst[#dst + 1] = src[i] end
end

-- mtt.tasks.encode(tok, task, instance[, opts]) -> {ids =, target_start =, n_prompt =,
-- n_target =, n_demos =, truncated =}
function M.encode(tok, task, inst, opts)
  local fname = 'mtt.tasks.encode'
  local o = options.check(fname, opts, ENCODE_OPTS)
  local fmt, k, seed, output = check_args(fname, task, inst, o)
  if type(tok) ~= 'table' then raise(fname .. ': tok must be a tokenizer, got ' .. type(tok)) end
  local eot = tok.eot_id
  if eot == nil then raise(fname .. ': the tokenizer has no <|endoftext|> token (eot_id)') end
  local max_len = o.max_len
  if max_len ~= nil and (not U.is_int(max_len) or max_len < 2) then
    raise(fname .. ': max_len must be an integer >= 2, got ' .. tostring(max_len))
  end
  local demos = demos_for(fname, task, inst, fmt, k, seed, o.demos)
  local target = tok:encode(' ' .. output, SPLIT)
  local n_target = #target + 1

  local function finish(prompt_ids, n_tgt, with_eot, nd, truncated)
    local ids = {}
    append(ids, prompt_ids)
    append(ids, target, n_tgt)
    if with_eot then ids[#ids + 1] = eot end
    return { ids = ids, target_start = #prompt_ids + 1, n_prompt = #prompt_ids, n_target = #ids - #prompt_ids,
      n_demos = nd, truncated = truncated }
  end

  -- (1) whole prompts, dropping demonstrations from the last
  for nd = #demos, 0, -1 do
    local p = tok:encode(render(task, fmt, demos, nd, inst.input), SPLIT)
    if max_len == nil or #p + n_target <= max_len then return finish(p, #target, true, nd, false) end
  end

  -- (2)-(4) piece by piece
  local ps = pieces(task, fmt, inst.input)
  local total = 0
  for _, pc in ipairs(ps) do
    pc.ids = tok:encode(pc[2], SPLIT)
    total = total + #pc.ids
  end
  local over = total + n_target - max_len
  for _, kind in ipairs({ 'input', 'def' }) do
    for _, pc in ipairs(ps) do
      if over > 0 and pc[1] == kind then
        local cut = math.min(over, #pc.ids)
        for _ = 1, cut do pc.ids[#pc.ids] = nil end
        over = over - cut
      end
    end
  end
  local prompt_ids = {}
  for _, pc in ipairs(ps) do append(prompt_ids, pc.ids) end
  if over <= 0 then return finish(prompt_ids, #target, true, 0, true) end
  local keep = max_len - #prompt_ids
  if keep < 1 then
    raise(string.format("%s: task '%s' (format %s): max_len = %d cannot hold the prompt's fixed frame (%d tokens) " ..
      'and one target token', fname, task.name, fmt, max_len, #prompt_ids))
  end
  return finish(prompt_ids, keep, false, 0, true)
end

-- mtt.tasks.encode_many(tok, task, instances[, opts]) -> array of encodings (as encode).
function M.encode_many(tok, task, instances, opts)
  if type(instances) ~= 'table' then raise('mtt.tasks.encode_many: instances must be an array') end
  local out = {}
  for i, inst in ipairs(instances) do out[i] = M.encode(tok, task, inst, opts) end
  return out
end

return M
