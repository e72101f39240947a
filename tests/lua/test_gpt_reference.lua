-- test_gpt_reference.lua: mtt.nn.GPT and mtt.nn.GPTNeoX against a PyTorch implementation of
-- the same layouts (tests/reference/gpt_reference.py, after Hugging Face's GPT2LMHeadModel and
-- GPTNeoXForCausalLM), on the same weights and inputs, in f32: logits, loss and the gradient
-- of every parameter, for several small configs of each layout. For GPT-NeoX also the rotary
-- cos/sin tables over all max_position_embeddings positions.
--
-- Error measure per tensor: max |mtt - torch| / max |torch| (relative to the tensor's
-- largest value). Tolerances: 1e-5 for logits and loss, 5e-5 for gradients (f32; the two sides
-- sum in different orders; measured errors are ~1e-6), 1e-6 absolute for the rotary tables.
--
-- The weights are not the models' initial ones (std 0.02 makes every logit nearly equal) but
-- draws of a size that gives a spread of activations, so that a wrong op shows.
local ffi = require 'ffi'
local cjson = require 'cjson'
local mtt = require 'mtt'
local C = require('mtt.ffi').C
local wrap = require('mtt.tensor').wrap

-- ---- the exchange format: the safetensors layout, written and read here (see the .py) ----
local DT = { f32 = 'F32', f64 = 'F64', i32 = 'I32' }
local DT_ID = { F32 = 0, F64 = 1, I32 = 2 }

local function write_tensors(path, list, metadata)
  local header, blobs, offset = { __metadata__ = metadata }, {}, 0
  for _, e in ipairs(list) do
    local t = e[2]:contiguous()
    local n = t:numel() * t:element_size()
    blobs[#blobs + 1] = ffi.string(t:data_ptr(), n)
    header[e[1]] = { dtype = DT[t.dtype], shape = t:shape(), data_offsets = { offset, offset + n } }
    offset = offset + n
  end
  local h = cjson.encode(header)
  local f = assert(io.open(path, 'wb'))
  local len = ffi.new('uint64_t[1]', #h)
  f:write(ffi.string(len, 8), h, table.concat(blobs))
  f:close()
end

local function read_tensors(path)
  local f = assert(io.open(path, 'rb'))
  local data = f:read('*a')
  f:close()
  local n = tonumber(ffi.cast('const uint64_t *', data)[0])
  local header = cjson.decode(data:sub(9, 8 + n))
  local base = ffi.cast('const char *', data) + 8 + n
  local out = {}
  for name, e in pairs(header) do
    if name ~= '__metadata__' then
      local shape = ffi.new('int64_t[8]')
      for i, s in ipairs(e.shape) do shape[i - 1] = s end
      out[name] = wrap(C.mtt_from_bytes(#e.shape, shape, base + e.data_offsets[1], DT_ID[e.dtype], 0))
    end
  end
  return out
end

-- max |a - b| / max |b|
local function rel_err(a, b)
  local diff = a:double() - b:double()
  local d = math.max(diff:max():item(), (-diff):max():item())
  local s = math.max(b:double():max():item(), (-b:double()):max():item())
  return d / math.max(s, 1e-30)
end

-- Every parameter replaced by a draw that gives a spread of activations.
local function spread_weights(model, seed)
  local gen = mtt.Generator(seed)
  mtt.no_grad(function()
    for _, e in ipairs(model:named_parameters()) do
      local name, p = e[1], e[2]
      local r = mtt.randn(p:shape(), { generator = gen })
      if name:match('layernorm%.weight$') or name:match('ln_%w+%.weight$') or name:match('layer_norm%.weight$') then
        p:copy_(r * 0.2 + 1)
      elseif name:match('bias$') then
        p:copy_(r * 0.1)
      elseif name:match('embed') or name:match('wte') or name:match('wpe') then
        p:copy_(r * 0.5)
      else
        local fan_in = name:match('c_%w+%.weight$') and p:size(1) or p:size(2) -- Conv1D [in, out], Linear [out, in]
        p:copy_(r * (1 / math.sqrt(fan_in)))
      end
    end
  end)
end

local failures, checks = {}, 0
local function check(case, what, err, tol)
  checks = checks + 1
  local bad = err ~= err or err > tol -- NaN fails too
  print(string.format('%-24s %-52s err %.2e (tol %.0e)%s', case, what, math.abs(err), tol, bad and '  FAIL' or ''))
  if bad then failures[#failures + 1] = case .. ' ' .. what end
end

-- Builds a case (model, inputs, mtt's results) and writes its exchange file.
local function make_case(name, arch, cfg, B, Tn, seed)
  mtt.manual_seed(seed)
  local model = arch == 'gpt2' and mtt.nn.GPT(cfg) or mtt.nn.GPTNeoX(cfg)
  spread_weights(model, seed + 1)
  local V = model.config.vocab_size
  local gen = mtt.Generator(seed + 2)
  local idx = mtt.randint(0, V, { B, Tn }, { generator = gen })
  local targets = mtt.randint(0, V, { B, Tn }, { generator = gen })
  targets[{ 1, 2 }] = -100 -- ignored positions, as Hugging Face's labels
  targets[{ B, Tn }] = -100
  local mask = (mtt.rand({ B, Tn }, { generator = gen }):gt(0.25)):float()
  local logits, loss = model(idx, targets, { mask = mask })
  loss:backward()
  local list = { { 'idx', idx }, { 'targets', targets }, { 'mask', mask } }
  for _, e in ipairs(model:named_parameters()) do list[#list + 1] = e end
  local case = { name = name, arch = arch, model = model, logits = logits, loss = loss,
    case_path = os.tmpname(), result_path = os.tmpname() }
  write_tensors(case.case_path, list, { arch = arch, config = cjson.encode(model.config) })
  return case
end

local function compare(case, ref)
  local name, model, logits, loss = case.name, case.model, case.logits, case.loss
  check(name, 'logits ' .. table.concat(logits:shape(), 'x'), rel_err(logits, ref.logits), 1e-5)
  check(name, string.format('loss (%.6f vs %.6f)', loss:item(), ref.loss[1]), rel_err(loss:reshape(1), ref.loss), 1e-5)
  local worst, worst_name = 0, '-'
  for _, e in ipairs(model:named_parameters()) do
    local g, rg = e[2].grad, ref['grad.' .. e[1]]
    assert(g and rg, name .. ': no gradient for ' .. e[1])
    local err = rel_err(g, rg)
    check(name, 'grad ' .. e[1], err, 5e-5)
    if err > worst then worst, worst_name = err, e[1] end
  end
  print(string.format('%-24s worst gradient: %s (%.2e)', name, worst_name, worst))
  if case.arch == 'gpt_neox' then
    local c = model.config
    local cos, sin = model.gpt_neox.layers[1].attention.rotary('f32')
    local R = c.rotary_ndims
    local function abs_err(mine, theirs)
      local d = (mine:narrow(3, 1, R):squeeze(2) - theirs):double()
      return math.max(d:max():item(), (-d):max():item())
    end
    local size = string.format('[%d, %d]', c.max_position_embeddings, R)
    check(name, 'rotary cos ' .. size, abs_err(cos, ref['rotary.cos']), 1e-6)
    check(name, 'rotary sin ' .. size, abs_err(sin, ref['rotary.sin']), 1e-6)
  end
end

local nodrop = { resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
local function gpt2(extra)
  local c = { vocab_size = 67, n_positions = 24, n_embd = 32, n_layer = 2, n_head = 4 }
  for k, v in pairs(nodrop) do c[k] = v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end
local function neox(extra)
  local c = { vocab_size = 67, hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 4,
    intermediate_size = 64, max_position_embeddings = 2048, rotary_pct = 0.5 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local cases = {
  make_case('gpt2 tied', 'gpt2', gpt2(), 3, 16, 10),
  make_case('gpt2 untied/erf gelu', 'gpt2', gpt2({ n_layer = 3, n_head = 2, n_inner = 48, activation_function = 'gelu',
    tie_word_embeddings = false, scale_attn_by_inverse_layer_idx = true }), 2, 24, 20),
  make_case('neox parallel', 'gpt_neox', neox(), 3, 16, 30),
  make_case('neox sequential', 'gpt_neox', neox({ use_parallel_residual = false, rotary_pct = 1, rotary_emb_base = 500,
    hidden_act = 'gelu_new', tie_word_embeddings = true, num_hidden_layers = 3 }), 2, 20, 40),
  make_case('neox pythia-like', 'gpt_neox',
    neox({ num_attention_heads = 2, rotary_pct = 0.25, attention_bias = false }), 2, 12, 50),
}

-- one run of the reference for all cases (importing torch is most of its time)
local paths = {}
for _, case in ipairs(cases) do
  paths[#paths + 1] = case.case_path
  paths[#paths + 1] = case.result_path
end
local cmd = '/usr/bin/python3 tests/reference/gpt_reference.py ' .. table.concat(paths, ' ')
assert(os.execute(cmd) == 0, 'the PyTorch reference failed to run: ' .. cmd)
for _, case in ipairs(cases) do
  compare(case, read_tensors(case.result_path))
  os.remove(case.case_path)
  os.remove(case.result_path)
end

assert(#failures == 0, 'GPT reference check failed: ' .. table.concat(failures, '; '))
print(string.format('all %d GPT reference checks passed', checks))
