-- mtt.nn.config: model configurations with Hugging Face's field names, checked.
--
-- A config is a Lua table, or the path of a Hugging Face config.json (read as is). Fields the
-- model uses get their defaults and type checks; fields that Hugging Face configs carry but
-- that do not change the model here (token ids, generation settings, bookkeeping) are
-- accepted and ignored; any other key is an error naming it, since a misspelt field must not
-- silently leave a default in place.
local cjson = require 'cjson'
local U = require 'mtt.util'

local raise = U.raise

local C = {}

-- Keys that Hugging Face's PretrainedConfig and generation settings put in config files:
-- accepted by every model here and ignored.
C.hf_ignored = {}
for k in ([[
  architectures model_type transformers_version torch_dtype _name_or_path _commit_hash
  _attn_implementation attn_implementation use_cache bos_token_id eos_token_id pad_token_id
  sep_token_id decoder_start_token_id task_specific_params output_hidden_states output_attentions
  return_dict use_return_dict torchscript id2label label2id num_labels problem_type is_decoder
  is_encoder_decoder tie_encoder_decoder cross_attention_hidden_size tokenizer_class prefix
  finetuning_task chunk_size_feed_forward pruned_heads gradient_checkpointing use_bfloat16
  tf_legacy_loss max_length min_length do_sample early_stopping num_beams num_beam_groups
  diversity_penalty temperature top_k top_p typical_p repetition_penalty length_penalty
  no_repeat_ngram_size encoder_no_repeat_ngram_size bad_words_ids num_return_sequences
  output_scores return_dict_in_generate forced_bos_token_id forced_eos_token_id
  remove_invalid_values exponential_decay_length_penalty suppress_tokens begin_suppress_tokens
  classifier_dropout
]]):gmatch('%S+') do C.hf_ignored[k] = true end

-- A JSON null (cjson.null) reads as absent.
local function value(v)
  if v == cjson.null then return nil end
  return v
end

local function read_json(fname, path)
  local f, err = io.open(path, 'rb')
  if not f then raise(string.format('%s: cannot open config %s', fname, err)) end
  local text = f:read('*a')
  f:close()
  local ok, t = pcall(cjson.decode, text)
  if not ok or type(t) ~= 'table' then
    raise(string.format('%s: %s is not a JSON object (%s)', fname, path, ok and type(t) or tostring(t)))
  end
  return t
end

-- resolve(fname, cfg, fields, extra_ignored) -> a new table with every field set.
-- fields: list of {name, kind, default[, check]}; kind: 'int' (>= 1), 'count' (>= 0),
-- 'prob', 'number', 'positive', 'boolean', 'string', 'int?' (integer or nil).
-- extra_ignored: this model's own accepted-and-ignored keys (set); aliases: {old = new}.
function C.resolve(fname, cfg, fields, extra_ignored, aliases)
  if type(cfg) == 'string' then cfg = read_json(fname, cfg) end
  if cfg == nil then cfg = {} end
  if type(cfg) ~= 'table' then
    raise(string.format('%s: config must be a table or a path, got %s', fname, type(cfg)))
  end
  local known, names = {}, {}
  for _, f in ipairs(fields) do
    known[f[1]] = f
    names[#names + 1] = f[1]
  end
  local given = {}
  for k, v in pairs(cfg) do
    if type(k) ~= 'string' then raise(string.format('%s: config keys must be names, got %s', fname, tostring(k))) end
    local target = aliases and aliases[k] or k
    if known[target] then
      if given[target] ~= nil and value(v) ~= nil and value(v) ~= given[target] then
        raise(string.format("%s: config gives '%s' twice (as '%s' too) with different values", fname, target, k))
      end
      if value(v) ~= nil then given[target] = value(v) end
    elseif not (C.hf_ignored[k] or (extra_ignored and extra_ignored[k])) then
      table.sort(names)
      raise(string.format("%s: unknown config field '%s' (model fields: %s)", fname, k, table.concat(names, ', ')))
    end
  end
  local out = {}
  for _, f in ipairs(fields) do
    local name, kind, default = f[1], f[2], f[3]
    local v = given[name]
    if v == nil then v = default end
    local ok
    if kind == 'int' then ok = U.is_int(v) and v >= 1
    elseif kind == 'count' then ok = U.is_int(v) and v >= 0
    elseif kind == 'int?' then ok = v == nil or (U.is_int(v) and v >= 1)
    elseif kind == 'prob' then ok = type(v) == 'number' and v >= 0 and v <= 1
    elseif kind == 'positive' then ok = type(v) == 'number' and v > 0
    elseif kind == 'number' then ok = type(v) == 'number' and v == v
    elseif kind == 'boolean' then ok = type(v) == 'boolean'
    elseif kind == 'string' then ok = type(v) == 'string'
    else error('config: unknown kind ' .. tostring(kind)) end
    if not ok then
      local want = ({ int = 'an integer >= 1', count = 'an integer >= 0', ['int?'] = 'an integer >= 1 or null',
        prob = 'a probability in [0, 1]', positive = 'a number > 0', number = 'a number', boolean = 'a boolean',
        string = 'a string' })[kind]
      raise(string.format("%s: config field '%s' must be %s, got %s", fname, name, want, tostring(v)))
    end
    if f[4] then
      local msg = f[4](v)
      if msg then raise(string.format("%s: config field '%s' %s", fname, name, msg)) end
    end
    out[name] = v
  end
  return out
end

return C
