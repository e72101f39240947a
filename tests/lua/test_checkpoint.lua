-- test_checkpoint.lua: training checkpoints. A state survives the round trip exactly (floats to
-- the bit, nested optimizer state with its tensors, sparse lists); resuming an AdamW run from a
-- checkpoint gives bitwise the losses of the uninterrupted run; latest() finds the newest
-- complete checkpoint and skips damaged, foreign and temporary files; and the crash test: a
-- child process writing 16 MB checkpoints in a loop is SIGKILLed at random moments of its
-- writing (fixed seed) 16 times; after each kill every file under a checkpoint's name loads and
-- holds exactly what its step wrote, temporary files are ignored, and the next child resumes
-- from latest().
--
-- `mtt run tests/lua/test_checkpoint.lua writer DIR` is the child (the crash test starts it).
local mtt = require 'mtt'
local ck = mtt.checkpoint
local mio = mtt.io

local WRITER_ELEMS = 4 * 2 ^ 20 -- 16 MB of f32 per checkpoint

-- ---- the child: writes checkpoints until killed ----
local function writer(dir)
  local _, last = ck.latest(dir)
  local step = (last or 0) + 1
  assert(io.open(dir .. '/writer-started', 'w')):close() -- tells the test that writing begins now
  local deadline = os.time() + 120 -- should the test die without killing it, stop anyway
  while os.time() < deadline do
    local w = mtt.full({ WRITER_ELEMS }, step)
    local opt_state = { type = 'AdamW', step = step, hyper = { lr = 1 / step, betas = { 0.9, 0.999 } },
      state = { [2] = { exp_avg = mtt.full({ 1000 }, -step) } } }
    ck.save(ck.path(dir, step), { tensors = { ['transformer.wte.weight'] = w, ['lm_head.weight'] = w:narrow(1, 1, 10) },
      state = { step = step, optimizer = opt_state, rng = { seed = 7, offset = step * 1000 }, note = 'step ' .. step } })
    ck.prune(dir, 3)
    step = step + 1
  end
end

if arg and arg[1] == 'writer' then
  writer(arg[2])
  return
end

local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_checkpoint', { stop = true })
local check, expect_error, read = checker.check, checker.expect_error, testlib.must_read
local tensor_bytes = testlib.tensor_bytes
local function same_bits(a, b)
  if a.dtype ~= b.dtype or table.concat(a:shape(), ',') ~= table.concat(b:shape(), ',') then return false end
  return tensor_bytes(a) == tensor_bytes(b)
end

local dir = testlib.tmpdir()
local ckdir = dir .. '/run/ckpt' -- save creates the folders

-- ---- 1. state round trip ----
local state = {
  step = 1234, lr = 3e-4, third = 1 / 3, tiny = 1e-300, neg_zero = -0.0, big = 2 ^ 53 - 1, neg = -17,
  name = 'caf\195\169 "quoted" \\ back\nslash\ttab \1 ctrl', yes = true, no = false,
  empty = {}, list = { 1, 'two', { three = 3 }, { 4, 5 } },
  rng = { seed = 42, offset = 987654321 },
  sparse = { [2] = 'b', [5] = 'e' }, negative_keys = { [-1] = 'm', [0] = 'z' },
  data = { train = { epoch = 2, pos = 17 }, val = { epoch = 0, pos = 3 } },
  inner = { weights = mtt.randn(3, 4), ids = mtt.tensor({ 1, 2, 3 }, { dtype = 'i32' }) },
}
local tensors = { ['transformer.h.0.attn.c_attn.weight'] = mtt.randn(4, 12), ['lm_head.weight'] = mtt.randn(5, 4):t() }
local path = ck.path(ckdir, 1234)
check(path == ckdir .. '/step-1234.safetensors', 'path: ' .. path)
ck.save(path, { tensors = tensors, state = state, metadata = { run = 'test' } })
local got = ck.load(path)
local function same(a, b, where)
  if mtt.is_tensor(a) then return check(mtt.is_tensor(b) and same_bits(a, b), where .. ': tensor differs') end
  if type(a) ~= 'table' then
    check(type(b) == type(a) and (a == b or (a ~= a and b ~= b)), string.format('%s: %s ~= %s', where, tostring(a), tostring(b)))
    if type(a) == 'number' and a == 0 then check(1 / a == 1 / b, where .. ': sign of zero') end
    return
  end
  check(type(b) == 'table', where .. ': not a table')
  for k, v in pairs(a) do same(v, b[k], where .. '.' .. tostring(k)) end
  for k in pairs(b) do check(a[k] ~= nil, where .. ': extra key ' .. tostring(k)) end
end
same(state, got.state, 'state')
same(tensors, got.tensors, 'tensors') -- the state's tensors are back in the state, not here
check(got.metadata.run == 'test' and got.metadata.format == 'pt' and got.metadata['mtt.checkpoint'] == '1', 'metadata')
-- deterministic bytes: the same content gives the same file
local bytes = read(path)
ck.save(path, { tensors = tensors, state = state, metadata = { run = 'test' } })
check(read(path) == bytes, 'saving the same checkpoint twice gave different bytes')

-- refused states name the offending path, and nothing is written
local p2 = ck.path(ckdir, 2)
expect_error('nan', { 'state.loss', 'nan' }, ck.save, p2, { state = { loss = 0 / 0 } })
expect_error('function', { 'state.f', 'function' }, ck.save, p2, { state = { f = print } })
expect_error('mixed keys', { 'state.t', 'mix' }, ck.save, p2, { state = { t = { 1, x = 2 } } })
expect_error('object', { 'state.g', 'metatable', 'get_state' }, ck.save, p2, { state = { g = mtt.Generator(1) } })
expect_error('reserved key', { '__tensor__' }, ck.save, p2, { state = { __tensor__ = 1 } })
expect_error('unknown option', { 'tensor', 'accepted' }, ck.save, p2, { tensor = {} })
check(not mio.stat(p2), 'a refused checkpoint was written')

-- ---- 2. resume equivalence: AdamW state through a checkpoint ----
local function model(seed)
  local g = mtt.Generator(seed)
  return { w1 = mtt.randn({ 16, 4 }, { generator = g }):requires_grad(),
    w2 = mtt.randn({ 3, 16 }, { generator = g }):requires_grad(),
    unused = mtt.zeros(2):requires_grad() } -- never gets a gradient: sparse optimizer state
end
local function params(m) return { m.w1, m.unused, m.w2 } end
local function step_loss(m, opt, s)
  local g = mtt.Generator(100 + s)
  local x = mtt.randn({ 8, 4 }, { generator = g })
  local y = mtt.randint(0, 3, { 8 }, { generator = g })
  local loss = mtt.F.cross_entropy(mtt.F.linear(mtt.F.linear(x, m.w1):gelu(), m.w2), y)
  opt:zero_grad()
  loss:backward()
  opt:step()
  return loss:item()
end
local straight = {}
do
  local m = model(1)
  local opt = mtt.optim.AdamW(params(m), { lr = 1e-2 })
  for s = 1, 10 do straight[s] = step_loss(m, opt, s) end
end
do
  local m = model(1)
  local opt = mtt.optim.AdamW(params(m), { lr = 1e-2 })
  for s = 1, 5 do check(step_loss(m, opt, s) == straight[s], 'first half differs') end
  ck.save(ck.path(ckdir, 5), { tensors = { w1 = m.w1, w2 = m.w2, unused = m.unused },
    state = { step = 5, optimizer = opt:state_dict() } })
end
do
  local loaded = ck.load(ck.path(ckdir, 5))
  local m = model(2) -- other weights: the checkpoint must replace them
  for name, t in pairs(loaded.tensors) do
    mtt.no_grad(function() m[name]:copy_(t) end)
  end
  local opt = mtt.optim.AdamW(params(m), { lr = 0.5 })
  opt:load_state_dict(loaded.state.optimizer)
  check(opt.lr == 1e-2, 'learning rate from the checkpoint')
  for s = 6, 10 do
    local l = step_loss(m, opt, s)
    check(l == straight[s], string.format('resumed step %d: loss %.17g, uninterrupted %.17g', s, l, straight[s]))
  end
end

-- ---- 3. latest, list, prune ----
local touch = testlib.write
ck.save(ck.path(ckdir, 10), { state = { step = 10 } })
ck.save(ck.path(ckdir, 2), { state = { step = 2 } })
mio.save_safetensors(ck.path(ckdir, 5000), { x = mtt.zeros(1) })                -- not a checkpoint
touch(ck.path(ckdir, 6000), 'garbage that is not a safetensors file')          -- damaged
touch(ck.path(ckdir, 7000) .. '.tmp-2147483646-0', 'partial')                  -- a dead writer's temp file
touch(ckdir .. '/step-x.safetensors', '')
touch(ckdir .. '/notes.txt', '')
local steps = {}
for _, e in ipairs(ck.list(ckdir)) do steps[#steps + 1] = e.step end
check(table.concat(steps, ',') == '2,5,10,1234,5000,6000', 'list: ' .. table.concat(steps, ','))
local lp, ls = ck.latest(ckdir)
check(lp == ck.path(ckdir, 1234) and ls == 1234, 'latest: ' .. tostring(lp))
check(ck.latest(dir .. '/nothing/here') == nil, 'latest of a missing folder')
local removed = ck.prune(ckdir, 2)
check(#removed == 5, 'prune removed ' .. #removed)
steps = {}
for _, e in ipairs(ck.list(ckdir)) do steps[#steps + 1] = e.step end
check(table.concat(steps, ',') == '5000,6000', 'after prune: ' .. table.concat(steps, ','))
check(not mio.stat(ck.path(ckdir, 7000) .. '.tmp-2147483646-0'), 'a dead writer\'s temp file survived prune')
check(ck.latest(ckdir) == nil, 'latest with only foreign and damaged files')
local plain = ck.load(ck.path(ckdir, 5000)) -- a plain safetensors file loads, with an empty state
check(next(plain.state) == nil and plain.tensors.x ~= nil, 'plain file as a checkpoint')

-- ---- 4. SIGKILL during writes ----
local exe = testlib.mtt_binary() -- the mtt command running this test
check(exe and mio.stat(exe), 'cannot find the mtt executable from arg: ' .. tostring(exe))
local kdir = dir .. '/kill'
mio.makedirs(kdir)
local script = debug.getinfo(1, 'S').source:sub(2)
local ffi = require 'ffi'
pcall(ffi.cdef, 'int usleep(unsigned int usec);')
local function alive(pid) -- a zombie (killed, not yet reaped by its new parent) counts as dead
  local f = io.open('/proc/' .. pid .. '/stat')
  if not f then return false end
  local stat = f:read('*l') or ''
  f:close()
  return not stat:match('^%d+ %b() Z')
end
math.randomseed(20240601)
local killed_mid_write, partial, progress, last_latest = 0, 0, 0, 0
local write_us -- microseconds one checkpoint takes to write (measured in round 1)
local current -- pid of the running writer, killed if a check fails mid-round
local function crash_rounds()
  for round = 1, 16 do
    -- Start a writer, wait until it begins writing (it says so with a marker file: start-up time
    -- does not matter, however loaded the machine), let it run a random 0-3 times the time of
    -- one checkpoint write more, then SIGKILL it. Nearly all of its time is spent writing, so
    -- the kills land in every phase of a write (data, fsync, rename).
    local p = assert(io.popen(string.format("'%s' run '%s' writer '%s' >/dev/null 2>&1 & echo $!", exe, script, kdir)))
    local pid = tonumber(p:read('*l'))
    p:close()
    check(pid, 'could not start the writer')
    current = pid
    local waited = 0
    while not mio.stat(kdir .. '/writer-started') do
      check(alive(pid), 'the writer died before writing anything')
      check(waited < 120e6, 'the writer did not start within 120 s')
      ffi.C.usleep(2000)
      waited = waited + 2000
    end
    os.remove(kdir .. '/writer-started')
    if round % 2 == 1 then
      -- odd rounds wait for one more complete checkpoint, so that the run makes progress (and
      -- resumes) however slow the machine; the first measures how long one write takes here
      local t = 0
      while (select(2, ck.latest(kdir)) or 0) <= last_latest do
        check(alive(pid) and t < 120e6, 'the writer did not finish a checkpoint within 120 s')
        ffi.C.usleep(2000)
        t = t + 2000
      end
      write_us = write_us or math.max(t, 20000)
    end
    ffi.C.usleep(math.floor(math.random() * 3 * write_us))
    os.execute('kill -9 ' .. pid)
    while alive(pid) do ffi.C.usleep(1000) end
    current = nil
    local temps = 0
    for _, name in ipairs(mio.listdir(kdir)) do
      if name:find('%.tmp%-%d+%-%d+$') then
        temps = temps + 1
        if not pcall(ck.load, kdir .. '/' .. name) then partial = partial + 1 end -- what a torn write looks like
        os.remove(kdir .. '/' .. name) -- so that the next round counts only its own
      end
    end
    if temps > 0 then killed_mid_write = killed_mid_write + 1 end
    local list = ck.list(kdir)
    for _, e in ipairs(list) do
      local c = ck.load(e.path) -- must load and validate: never a partial file under this name
      local w = c.tensors['transformer.wte.weight']
      check(w:numel() == WRITER_ELEMS and w:min():item() == e.step and w:max():item() == e.step,
        'wrong weights in ' .. e.path)
      check(c.tensors['lm_head.weight']:sum():item() == 10 * e.step, 'second tensor of ' .. e.path)
      check(c.state.step == e.step and c.state.rng.offset == e.step * 1000 and c.state.note == 'step ' .. e.step,
        'state of ' .. e.path)
      check(c.state.optimizer.hyper.lr == 1 / e.step and c.state.optimizer.state[2].exp_avg:sum():item() == -1000 * e.step,
        'optimizer state of ' .. e.path)
      check(c.state.optimizer.state[1] == nil, 'sparse optimizer state of ' .. e.path)
    end
    local _, latest = ck.latest(kdir)
    latest = latest or 0
    check(latest >= last_latest, 'latest went back')
    if latest > last_latest then progress = progress + 1 end
    last_latest = latest
  end
end
local ok, err = pcall(crash_rounds)
if not ok then
  if current then os.execute('kill -9 ' .. current) end
  error(err, 0)
end
print(string.format('crash test: one write takes ~%.0f ms; 16 kills, %d mid-write (temp file left, %d of them '
  .. 'partial), %d rounds made progress, last step %d', write_us / 1000, killed_mid_write, partial, progress, last_latest))
check(killed_mid_write >= 3, 'too few kills landed during a write to test anything: ' .. killed_mid_write)
check(progress >= 8, 'the writer made too little progress: ' .. progress)

testlib.rmdir(dir)
checker.done()
