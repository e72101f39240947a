-- tools/gpu/train_compare.lua: the pre-training recipe's GPT trained on cuda and on the cpu with
-- the same seed and the same batches, so that the loss curves can be laid side by side: f32 on
-- cuda should follow the cpu closely (only rounding differs), bf16 (MEDIUM precision) loosely.
--   mtt run tools/gpu/train_compare.lua [steps=300] [csv=path] [runs=cuda,cuda-bf16,cpu]
--                                       [model=nn|local] [batch=8] [block=128] [layers=4] [embd=256]
-- Model: recipes/pretrain.lua's (mtt.nn.GPT: GPT-2 layout, 4 layers, width 256, 4 heads, 128
-- positions; model=local takes tools/gpu/gpt.lua instead), drawn on the cpu and moved with
-- mtt.device.prepare after mtt.device.setup{device =, precision =} (the recipe setting). Training as the recipe: AdamW (0.9, 0.95), weight decay 0.1, lr 1e-3 after 40
-- warm-up steps, cosine to 1e-4, clipping at 1. Data: the bytes of the repository's own text
-- (vocabulary 256; the recipe's corpus and tokenizer are built artifacts the GPU machine lacks),
-- batches drawn by a seeded generator on the cpu and moved, so every run sees the same tokens.
-- The cpu runs last and the csv is rewritten after every run, so a slow cpu loses only its own
-- curve to a time limit.
package.path = 'tools/gpu/?.lua;' .. package.path
local mtt = require 'mtt'
local util = require 'gpu_util'

local opts = util.options('train_compare', { steps = 300, csv = '', runs = 'cuda,cuda-bf16,cpu', model = 'nn',
  batch = 8, block = 128, layers = 4, embd = 256 },
  { 'steps', 'csv', 'runs', 'model', 'batch', 'block', 'layers', 'embd' })
if opts.model == 'nn' and not (mtt.nn and mtt.nn.GPT) then opts.model = 'local' end

-- ---- data: bytes of the repository's text ----
local data, n_tokens = util.byte_text({ 'README.md', 'lua', 'core', 'tools', 'tests', 'recipes' },
  { 'md', 'lua', 'c', 'h', 'py' })
assert(n_tokens > 100000, 'train_compare: too little text found (run from the repository root)')

local B, T = opts.batch, opts.block
local batches = {}
do
  local g, draw = mtt.Generator(2), util.windows(data, n_tokens, T)
  for s = 1, opts.steps do batches[s] = { draw(B, g) } end
end

-- the model on the cpu from a fixed seed; params and a loss function
local function build(dev)
  local device = dev.device
  local H = opts.embd / 64
  if opts.model == 'nn' then
    local model = mtt.nn.GPT({ vocab_size = 256, n_positions = T, n_embd = opts.embd, n_layer = opts.layers,
      n_head = H, resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }, { generator = mtt.Generator(1) })
    mtt.device.prepare(model, device)
    return model:parameters(), function(idx, tgt)
      local _, loss = model(idx, tgt)
      return loss
    end
  end
  local GPT = require 'gpt'
  local model = GPT.new({ vocab_size = 256, n_positions = T, n_embd = opts.embd, n_layer = opts.layers, n_head = H,
    device = device, seed = 1 })
  return model.params, function(idx, tgt) return model:loss(idx, tgt) end
end

local function lr_at(s) -- the recipe's schedule, over 800 steps as there
  if s <= 40 then return 1e-3 * s / 40 end
  local t = math.min(1, (s - 40) / (800 - 40))
  return 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * t))
end

local function run(name)
  -- the recipe setting: device and precision in one call (mtt.device)
  local dev = mtt.device.setup({ device = name:match('^cuda') and 'cuda' or 'cpu',
    precision = name:match('bf16') and 'bf16' or name:match('tf32') and 'tf32' or 'f32' })
  local device = dev.device
  local params, loss_of = build(dev)
  local opt = mtt.optim.AdamW(params, { lr = 1e-3, weight_decay = 0.1, betas = { 0.9, 0.95 } })
  local losses, wall0, cpu0 = {}, os.time(), os.clock()
  for s = 1, opts.steps do
    opt.lr = lr_at(s)
    opt:zero_grad()
    local loss = loss_of(batches[s][1]:to(device), batches[s][2]:to(device))
    loss:backward()
    mtt.nn.utils.clip_grad_norm_(params, 1.0)
    opt:step()
    losses[s] = loss:item()
  end
  mtt.device.setup({ device = 'cpu' })
  print(string.format('  %-10s %d steps, loss %.4f -> %.4f (%d s wall, %.1f s cpu)', name, opts.steps, losses[1],
    losses[opts.steps], os.time() - wall0, os.clock() - cpu0))
  return losses
end

local names, curves = {}, {}
local function write_csv()
  if opts.csv == '' then return end
  local f = assert(io.open(opts.csv, 'w'))
  f:write('step,' .. table.concat(names, ',') .. '\n')
  for s = 1, opts.steps do
    local row = { tostring(s) }
    for _, name in ipairs(names) do row[#row + 1] = string.format('%.6f', curves[name][s]) end
    f:write(table.concat(row, ',') .. '\n')
  end
  f:close()
end

print(string.format('train_compare: %s GPT, %d layers, width %d, T=%d, batch %d, vocabulary 256, %d tokens of text, ' ..
  '%d steps', opts.model == 'nn' and 'mtt.nn' or 'tools/gpu/gpt.lua', opts.layers, opts.embd, T, B, n_tokens, opts.steps))
for name in tostring(opts.runs):gmatch('[^,]+') do
  curves[name] = run(name)
  names[#names + 1] = name
  write_csv()
end

-- ---- the curves against the cpu's (or the first run's) ----
local ref_name = curves.cpu and 'cpu' or names[1]
local ref = curves[ref_name]
local function tail_mean(c, k)
  local s = 0
  for i = #c - k + 1, #c do s = s + c[i] end
  return s / k
end
local k = math.min(50, opts.steps)
for _, name in ipairs(names) do
  if name ~= ref_name then
    local c, early, worst = curves[name], 0, 0
    for s = 1, opts.steps do
      local d = math.abs(c[s] - ref[s]) / ref[s]
      if s <= 50 then early = math.max(early, d) end
      worst = math.max(worst, d)
    end
    print(string.format('  %s vs %s: steps 1-50 at most %.2e relative, all steps %.2e, mean of the last %d %.2e', name,
      ref_name, early, worst, k, math.abs(tail_mean(c, k) - tail_mean(ref, k)) / tail_mean(ref, k)))
  end
end
if opts.csv ~= '' then print('  loss curves: ' .. opts.csv) end
