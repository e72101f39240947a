-- tools/gpu/train_loop.lua: mtt.train itself on cuda (the loop the recipes use, through its
-- `device =` / `precision =` options and mtt.device), against the same run on the cpu, and a
-- run stopped half way and resumed from its checkpoint on cuda, which must log the same losses
-- bit for bit as the uninterrupted cuda run.
--   mtt run tools/gpu/train_loop.lua [steps=40] [layers=2] [embd=128] [block=64] [batch=8] [dir=/tmp]
-- Data: random windows of the repository's own text as bytes (vocabulary 256), drawn on the cpu
-- by a seeded generator from a cursor mtt.train checkpoints, so every run sees the same batches.
-- Exits non-zero when a check fails; prints "skipped: ..." and exits 0 when there is no device or
-- mtt.train has no device option yet.
package.path = 'tools/gpu/?.lua;' .. package.path
local mtt = require 'mtt'
local util = require 'gpu_util'

local o = util.options('train_loop', { steps = 40, layers = 2, embd = 128, block = 64, batch = 8,
  dir = os.getenv('TMPDIR') or '/tmp' }, { 'steps', 'layers', 'embd', 'block', 'batch', 'dir' })
if not mtt.cuda.available() then
  print('skipped: no CUDA device (' .. mtt.cuda.get_device_name() .. ')')
  return
end
local root = o.dir .. '/mtt-train-loop' -- run folders (checkpoints: kept out of $OUT)

local text, n_text = util.byte_text({ 'README.md', 'lua', 'core' }, { 'md', 'lua', 'c' })
assert(n_text > 10000, 'train_loop: too little text (run from the repository root)')
local draw = util.windows(text, n_text, o.block)

local function data()
  local d = { n = 0 }
  function d:batch(split, B)
    self.n = self.n + 1
    return draw(B, mtt.Generator((split == 'train' and 1 or 2) * 1000003 + self.n))
  end
  function d:state() return { n = self.n } end
  function d:set_state(s) self.n = s.n end
  return d
end

local function run(name, device, precision, stop)
  local model = mtt.nn.GPT({ vocab_size = 256, n_positions = o.block, n_embd = o.embd, n_layer = o.layers,
    n_head = math.max(1, math.floor(o.embd / 64)), resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 },
    { generator = mtt.Generator(1) })
  local waits0 = mtt.cuda.host_waits()
  local r = mtt.train({ model = model, data = data(), steps = o.steps, batch_size = o.batch, lr = 1e-3,
    warmup = math.floor(o.steps / 10), seed = 7, run_dir = root .. '/' .. name, ckpt_every = math.floor(o.steps / 2),
    eval_every = math.floor(o.steps / 2), eval_batches = 2, progress = false, device = device, precision = precision,
    on_step = stop and function(info) if info.step == stop then return false end end or nil })
  local on = model:parameters()[1].device
  mtt.device.setup({ device = 'cpu' })
  return r, on, (mtt.cuda.host_waits() - waits0) / o.steps
end

os.execute("rm -rf '" .. root .. "'")
local ok, err = pcall(run, 'probe', 'cuda', 'f32', 1)
if not ok and tostring(err):find("unknown option 'device'", 1, true) then
  print('skipped: mtt.train has no device option yet (' .. tostring(err) .. ')')
  return
elseif not ok then
  error(err, 0)
end

local failures = 0
local function check(cond, what)
  print((cond and 'ok   ' or 'FAIL ') .. what)
  if not cond then failures = failures + 1 end
end
local clock = os.clock
local t0 = clock()
local cuda, on, waits = run('cuda', 'cuda', 'f32')
check(on == 'cuda', 'mtt.train{device = "cuda"} trains the parameters on cuda')
print(string.format('  cuda f32: %d steps, loss %.4f -> %.4f, %.1f host waits per step', o.steps, cuda.losses[1],
  cuda.losses[o.steps], waits))
local bf16 = run('cuda-bf16', 'cuda', 'bf16')
local cpu = run('cpu', 'cpu', 'f32')
run('part', 'cuda', 'f32', math.floor(o.steps / 2))
local resumed = run('part', 'cuda', 'f32')
local worst, worst_bf16, same = 0, 0, true
for s = 1, o.steps do
  worst = math.max(worst, math.abs(cuda.losses[s] - cpu.losses[s]) / cpu.losses[s])
  worst_bf16 = math.max(worst_bf16, math.abs(bf16.losses[s] - cpu.losses[s]) / cpu.losses[s])
  if s > math.floor(o.steps / 2) then same = same and resumed.losses[s] == cuda.losses[s] end
end
check(cpu.losses[o.steps] < cpu.losses[1], string.format('the cpu run learns (%.4f -> %.4f)', cpu.losses[1], cpu.losses[o.steps]))
check(worst < 2e-3, string.format('cuda f32 vs cpu: losses within %.2e relative (limit 2e-3)', worst))
check(worst_bf16 < 5e-2, string.format('cuda bf16 vs cpu: losses within %.2e relative (limit 5e-2)', worst_bf16))
check(resumed.resumed_from == math.floor(o.steps / 2) and same, 'resumed on cuda: the same losses bit for bit')
check(cuda.val_loss ~= nil and math.abs(cuda.val_loss - cpu.val_loss) < 2e-3 * cpu.val_loss, 'validation loss on cuda vs cpu')
print(string.format('train_loop: %d failure(s), %.1f s', failures, clock() - t0))
if failures > 0 then os.exit(1) end
