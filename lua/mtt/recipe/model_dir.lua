-- A model folder: config.json (GPT2Config fields), model.safetensors (Hugging Face
-- GPT2LMHeadModel names) and tokenizer.json (Hugging Face format). Pre-training writes one as
-- its output, instruction tuning reads one and writes another; evaluations load any of them.
local metrics = require 'mtt.train.metrics'
local io_ = require 'mtt.io'

local M = {}

local function need(path, what)
  if not io_.stat(path) then
    error(string.format('%s: %s is missing (run the phase that writes it first)', what, path), 0)
  end
end

function M.save(dir, model, tok)
  io_.makedirs(dir)
  local cfg = {}
  for k, v in pairs(model.config) do cfg[k] = v end
  cfg.model_type, cfg.architectures = 'gpt2', { 'GPT2LMHeadModel' }
  cfg.bos_token_id, cfg.eos_token_id = tok.eot_id, tok.eot_id
  assert(metrics.write_file(dir .. '/config.json', metrics.encode(cfg, '  ') .. '\n'))
  io_.save_safetensors(dir .. '/model.safetensors', model:state_dict({ tied = false }), { format = 'pt' })
  tok:save(dir .. '/tokenizer.json')
end

-- load(dir) -> model (in eval mode), tokenizer. The weights are copied out of the mapped file,
-- so the folder can be rewritten while the model lives.
function M.load(dir)
  local nn = require 'mtt.nn'
  local tokenizer = require 'mtt.tokenizer'
  need(dir .. '/config.json', 'model folder')
  need(dir .. '/model.safetensors', 'model folder')
  need(dir .. '/tokenizer.json', 'model folder')
  local model = nn.GPT(dir .. '/config.json')
  local sd = io_.load_safetensors(dir .. '/model.safetensors')
  model:load_state_dict(sd)
  model:eval()
  return model, tokenizer.load(dir .. '/tokenizer.json')
end

-- True when dir holds a complete model folder.
function M.exists(dir)
  return io_.stat(dir .. '/config.json') and io_.stat(dir .. '/model.safetensors') and
    io_.stat(dir .. '/tokenizer.json') and true or false
end

return M
