-- tools/gpu/train_compare.lua: the same small GPT trained on the cpu and on cuda, same seed and
-- same batches, so that the loss curves can be laid side by side: f32 on cuda should follow the
-- cpu closely (only rounding differs); bf16 (MEDIUM precision) should follow it loosely.
--   mtt run tools/gpu/train_compare.lua [steps=300] [csv=path] [runs=cpu,cuda,cuda-bf16]
-- Data: the bytes of the repository's own text files (vocabulary 256), batches drawn by a seeded
-- generator on the cpu and moved to the device, so every run sees the same tokens.
package.path = 'tools/gpu/?.lua;' .. package.path
local ffi = require 'ffi'
local mtt = require 'mtt'
local C = require('mtt.ffi').C
local GPT = require 'gpt'

local opts = { steps = 300, csv = nil, runs = 'cpu,cuda,cuda-bf16', batch = 8, block = 128, layers = 4, embd = 128 }
for _, a in ipairs(arg or {}) do
  local k, v = a:match('^([%w_]+)=(.*)$')
  if not k or opts[k] == nil and k ~= 'csv' then error('train_compare: unknown argument ' .. a .. ' (steps=, csv=, runs=, batch=, block=, layers=, embd=)') end
  opts[k] = tonumber(v) or v
end

-- ---- data: bytes of the repository's text ----
local function corpus()
  local parts = {}
  local list = io.popen("find README.md lua core tools tests recipes -type f \\( -name '*.md' -o -name '*.lua' " ..
    "-o -name '*.c' -o -name '*.h' -o -name '*.py' \\) 2>/dev/null | sort")
  for path in list:lines() do
    local f = io.open(path, 'rb')
    if f then
      parts[#parts + 1] = f:read('*a')
      f:close()
    end
  end
  list:close()
  local text = table.concat(parts, '\n')
  local n = #text
  local t = mtt.empty(n, { dtype = 'i32' })
  local p = ffi.cast('int32_t *', t:data_ptr())
  for i = 1, n do p[i - 1] = text:byte(i) end
  return t, n
end

local data, n_tokens = corpus()
assert(n_tokens > 100000, 'train_compare: too little text found (run from the repository root)')

-- the batches of every run, drawn once
local B, T = opts.batch, opts.block
local batches = {}
do
  local g = mtt.Generator(2)
  local offsets = mtt.arange(0, T + 1, 1, { dtype = 'i32' })
  for s = 1, opts.steps do
    local starts = mtt.randint(0, n_tokens - T - 1, { B, 1 }, { generator = g })
    local pos = starts + offsets:view(1, T + 1) -- [B, T+1]
    local seq = data:index_select(1, pos:view(-1)):view(B, T + 1)
    batches[s] = { seq:narrow(2, 1, T):contiguous(), seq:narrow(2, 2, T):contiguous() }
  end
end

local function run(name)
  local device = name:match('^cuda') and 'cuda' or 'cpu'
  local precision = name:match('bf16') and 2 or name:match('tf32') and 1 or 0
  C.mtt_set_float32_matmul_precision(precision)
  local model = GPT.new({ vocab_size = 256, n_positions = T, n_embd = opts.embd, n_layer = opts.layers,
    n_head = opts.embd / 64, device = device, seed = 1 })
  local opt = mtt.optim.AdamW(model.params, { lr = 1e-3, weight_decay = 0.1, betas = { 0.9, 0.95 } })
  local losses = {}
  local t0 = os.clock()
  local wall0 = os.time()
  for s = 1, opts.steps do
    opt.lr = 1e-3 * math.min(1, s / 20)
    opt:zero_grad()
    local idx, tgt = batches[s][1]:to(device), batches[s][2]:to(device)
    local loss = model:loss(idx, tgt)
    loss:backward()
    mtt.nn.utils.clip_grad_norm_(model.params, 1.0)
    opt:step()
    losses[s] = loss:to('cpu'):item()
  end
  if device == 'cuda' then C.mtt_cuda_synchronize() end
  C.mtt_set_float32_matmul_precision(0)
  print(string.format('  %-10s %d steps, loss %.4f -> %.4f (%d s wall, %.1f s cpu)', name, opts.steps, losses[1],
    losses[opts.steps], os.time() - wall0, os.clock() - t0))
  return losses
end

print(string.format('train_compare: GPT %d layers, C=%d, T=%d, B=%d, vocab 256, %d tokens of text, %d steps', opts.layers,
  opts.embd, T, B, n_tokens, opts.steps))
local names, curves = {}, {}
for name in tostring(opts.runs):gmatch('[^,]+') do
  names[#names + 1] = name
  curves[name] = run(name)
end

-- ---- comparison against the first run (the cpu) ----
local ref = curves[names[1]]
local function tail_mean(c, k)
  local s = 0
  for i = #c - k + 1, #c do s = s + c[i] end
  return s / k
end
local k = math.min(50, opts.steps)
local summary = {}
for i = 2, #names do
  local c, worst_early, worst = curves[names[i]], 0, 0
  for s = 1, opts.steps do
    local d = math.abs(c[s] - ref[s]) / ref[s]
    if s <= math.min(50, opts.steps) then worst_early = math.max(worst_early, d) end
    worst = math.max(worst, d)
  end
  local final = math.abs(tail_mean(c, k) - tail_mean(ref, k)) / tail_mean(ref, k)
  summary[#summary + 1] = string.format('%s vs %s: steps 1-50 at most %.2e relative, all steps %.2e, mean of the last %d %.2e',
    names[i], names[1], worst_early, worst, k, final)
  print('  ' .. summary[#summary])
end

if opts.csv then
  local f = assert(io.open(opts.csv, 'w'))
  f:write('step,' .. table.concat(names, ',') .. '\n')
  for s = 1, opts.steps do
    local row = { tostring(s) }
    for _, name in ipairs(names) do row[#row + 1] = string.format('%.6f', curves[name][s]) end
    f:write(table.concat(row, ',') .. '\n')
  end
  f:close()
  print('  loss curves: ' .. opts.csv)
end
return summary
