-- bench_batching.lua: padding + length bucketing vs packing, for instruction-tuning batches.
--
--   mtt run tools/bench/bench_batching.lua [batches] [threads] [format]
--
-- The same mixture of the Super-NaturalInstructions files in ../shared/data/niv2, a tokenizer
-- trained on them, and a small GPT (4 layers, width 128, 128 positions); mtt.data.instruct
-- with pack = false (padded, length-bucketed) and pack = true (packed rows of 128). Each
-- timed step is forward + backward of one batch: 16 rows padded (T rounded up to a multiple of
-- 8, or exact), 16 packed rows, and padded rows as many as the examples a packed batch holds
-- (the same work in examples); the kinds
-- alternate, step by step, so that a busy machine slows them alike; time is the process's CPU time (os.clock: the
-- OpenMP threads wait passively, so it counts work, not waiting for a shared machine) and wall
-- time. Prints, for each, the target (loss) tokens per CPU second and per wall second, real
-- tokens per CPU second, the padded fraction, and the ratios. Not a test.
local mtt = require 'mtt'
local progress = require 'mtt.train.progress'

local N = tonumber(arg and arg[1]) or 12
if arg and arg[2] then mtt.threads(tonumber(arg[2])) end
local FORMAT = arg and arg[3] or 'tk'
local B, BLOCK = 16, 128

local tasks = mtt.tasks.load(mtt.root .. '/../shared/data/niv2')
local texts = {}
for _, t in ipairs(tasks) do
  texts[#texts + 1] = t.definition
  for _, i in ipairs(t.instances) do texts[#texts + 1] = 'Input: ' .. i.input .. '\nOutput: ' .. i.outputs[1] end
end
local tok = mtt.tokenizer.train { texts = texts, vocab_size = 2048 }

local function data(pack, multiple)
  return mtt.data.instruct { mixture = mtt.data.mixture { tasks = tasks, cap = 500, seed = 1 }, tokenizer = tok,
    block_size = BLOCK, format = FORMAT, seed = 1, pack = pack, pad_multiple = multiple }
end
mtt.manual_seed(0)
local model = mtt.nn.GPT { vocab_size = tok.vocab_size, n_positions = BLOCK, n_embd = 128, n_layer = 4, n_head = 4,
  resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
local params = model:parameters()

-- examples a packed row holds, on average (a few untimed batches)
local probe, n_ex = data(true), 0
for _ = 1, 4 do
  local _, _, info = probe:batch('train', B)
  for _, row in ipairs(info.rows) do n_ex = n_ex + #row.segments end
end
local B_same = math.max(B, math.floor(n_ex / 4 + 0.5)) -- padded rows = the examples of a packed batch

local kinds = { { name = 'padded, T % 8', d = data(false), B = B }, { name = 'packed', d = data(true), B = B },
  { name = string.format('padded, B = %d', B_same), d = data(false, 1), B = B_same },
  { name = 'padded, T % 1', d = data(false, 1), B = B } }
for _, k in ipairs(kinds) do k.time, k.wall, k.target, k.real, k.total, k.rows = 0, 0, 0, 0, 0, 0 end
local function step(k, timed)
  local idx, targets, info = k.d:batch('train', k.B)
  local t0, c0 = progress.now(), os.clock()
  local _, loss = model(idx, targets)
  loss:backward()
  for _, p in ipairs(params) do p.grad = nil end
  if timed then
    k.time, k.wall = k.time + os.clock() - c0, k.wall + progress.now() - t0
    k.target, k.real, k.total = k.target + info.n_target, k.real + info.n_tokens, k.total + idx:numel()
    for _, row in ipairs(info.rows) do k.rows = k.rows + #row.segments end
  end
end
for _, k in ipairs(kinds) do step(k, false) end -- warm-up
for _ = 1, N do
  for _, k in ipairs(kinds) do step(k, true) end
end

print(string.format('instruction batches, format %s, B = %d, block %d, GPT 4x128, %d threads, %d steps each',
  FORMAT, B, BLOCK, mtt.threads(), N))
for _, k in ipairs(kinds) do
  k.rate, k.wall_rate = k.target / k.time, k.target / k.wall
  print(string.format('  %-18s %7.0f target tok/CPU s (%6.0f /wall s) %8.0f real tok/CPU s  %5.1f%% padding  %.1f examples a step',
    k.name, k.rate, k.wall_rate, k.real / k.time, 100 * (1 - k.real / k.total), k.rows / N))
end
print(string.format('packed / padded (B = %d, T a multiple of 8), target tokens per CPU second: %.3f (per wall second: %.3f)', B,
  kinds[2].rate / kinds[1].rate, kinds[2].wall_rate / kinds[1].wall_rate))
print(string.format('packed / padded (B = %d, T exact), target tokens per CPU second: %.3f (per wall second: %.3f)', B,
  kinds[2].rate / kinds[4].rate, kinds[2].wall_rate / kinds[4].wall_rate))
print(string.format('packed / padded (B = %d, as many examples a step), target tokens per CPU second: %.3f (wall: %.3f)',
  B_same, kinds[2].rate / kinds[3].rate, kinds[2].wall_rate / kinds[3].wall_rate))
