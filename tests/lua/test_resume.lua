-- test_resume.lua: a training run killed with SIGKILL and resumed logs bitwise the losses of a
-- run that was never interrupted.
--
-- The run (a small GPT with dropout, so the generators' state matters; a corpus with a
-- validation split; grad accumulation, warm-up + cosine, periodic evaluation and checkpoints)
-- is a child process: `mtt run tests/lua/test_resume.lua child RUN_DIR`. The test runs it once
-- to the end, then again in another folder, killing it with SIGKILL twice, each time when the
-- metrics file reaches a step drawn from a fixed seed, and restarting it; the kill lands
-- wherever the child is at that moment (computing, evaluating, writing a checkpoint). Every
-- logged loss and validation loss of the two runs must be bitwise identical.
local ffi = require 'ffi'
local mtt = require 'mtt'

pcall(ffi.cdef, [[
int test_resume_kill(int pid, int sig) __asm__("kill");
int test_resume_poll(void *fds, unsigned long n, int timeout) __asm__("poll");
]])
local function sleep_ms(ms) ffi.C.test_resume_poll(nil, 0, ms) end

local STEPS = 30

-- ---- the child: one training run, resumed from its folder if a checkpoint is there ----
if arg[1] == 'child' then
  local run_dir = arg[2]
  mtt.threads(2)
  mtt.manual_seed(0)
  -- a token stream with structure to learn: a noisy walk over a vocabulary of 97
  local g = mtt.Generator(42)
  local n = 20000
  local steps = mtt.randint(-2, 3, { n }, { generator = g })
  local jumps = mtt.randint(0, 97, { n }, { generator = g })
  local coin = mtt.randint(0, 8, { n }, { generator = g })
  local stream = mtt.empty(n, { dtype = 'i32' })
  local sp, jp, cp = ffi.cast('int32_t *', steps:data_ptr()), ffi.cast('int32_t *', jumps:data_ptr()),
    ffi.cast('int32_t *', coin:data_ptr())
  local out = ffi.cast('int32_t *', stream:data_ptr())
  local x = 0
  for i = 0, n - 1 do
    x = cp[i] == 0 and jp[i] or (x + sp[i]) % 97
    out[i] = x
  end
  local corpus = mtt.data.corpus { tokens = stream, block_size = 16, seed = 3, val_fraction = 0.1 }
  local model = mtt.nn.GPT { vocab_size = 97, n_positions = 16, n_embd = 32, n_layer = 2, n_head = 4,
    resid_pdrop = 0.1, embd_pdrop = 0.1, attn_pdrop = 0.1 }
  local _, from = mtt.checkpoint.latest(run_dir .. '/ckpt')
  print('start_from=' .. tostring(from))
  io.stdout:flush()
  local res = mtt.train { model = model, data = corpus, run_dir = run_dir, steps = STEPS, batch_size = 4,
    grad_accum = 2, lr = 1e-2, min_lr = 1e-3, warmup = 3, eval_every = 5, eval_batches = 2, ckpt_every = 4,
    log_every = 1, seed = 1, progress = false,
    -- a pause per step, so that the parent's kill lands while the run is still going
    on_step = function() sleep_ms(15) end }
  print('resumed_from=' .. tostring(res.resumed_from))
  print('child done')
  return
end

-- ---- the parent ----
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_resume')
local check = checker.check
local exe, script = testlib.mtt_binary(), arg[0]

local work = string.format('%s/mtt_test_resume_%d', os.getenv('TMPDIR') or '/tmp',
  io.open('/proc/self/stat'):read('*n')) -- by pid
os.execute("rm -rf '" .. work .. "' && mkdir -p '" .. work .. "'")

local function read_file(path) return testlib.read(path) or '' end -- '' before the child writes it

local function metric_lines(dir)
  local lines = {}
  for line in read_file(dir .. '/metrics.jsonl'):gmatch('([^\n]*)\n') do lines[#lines + 1] = line end
  return lines
end

-- Starts the child on dir; kill_at: SIGKILL it once metrics.jsonl has that many lines (nil:
-- let it finish). Returns the child's output.
local function run_child(dir, kill_at, log)
  -- the shell prints its pid and becomes the mtt process (exec), so that pid is the child's
  local cmd = string.format("sh -c 'echo $$; exec \"%s\" run \"%s\" child \"%s\" >\"%s\" 2>&1' 2>/dev/null", exe,
    script, dir, log)
  local p = io.popen(cmd, 'r')
  local pid = tonumber(p:read('*l'))
  assert(pid, 'the child did not start')
  if kill_at then
    local waited = 0
    while #metric_lines(dir) < kill_at and waited < 120000 do
      sleep_ms(2)
      waited = waited + 2
    end
    ffi.C.test_resume_kill(pid, 9)
  end
  p:read('*a')
  p:close()
  return read_file(log)
end

-- 1. the uninterrupted run
local full_dir = work .. '/full'
local out = run_child(full_dir, nil, work .. '/full.log')
check(out:find('child done', 1, true) and out:find('resumed_from=nil', 1, true), 'the uninterrupted run finished: ' .. out)
local full = metric_lines(full_dir)
check(#full == STEPS, string.format('the uninterrupted run logged %d steps (%d)', STEPS, #full))

-- 2. killed twice at steps from a fixed seed, resumed each time
local draws = mtt.randint(4, STEPS - 2, { 2 }, { generator = mtt.Generator(2024) }):totable()
table.sort(draws)
if draws[2] == draws[1] then draws[2] = draws[1] + 1 end
local dir = work .. '/killed'
local starts = {}
for i, at in ipairs({ draws[1], draws[2], false }) do
  out = run_child(dir, at or nil, work .. '/killed' .. i .. '.log')
  starts[i] = out:match('start_from=(%w+)')
  if at then
    local got = #metric_lines(dir)
    print(string.format('run %d: SIGKILL when step %d was logged (%d steps logged by then); it had started from ' ..
      'checkpoint %s', i, at, got, tostring(starts[i])))
    check(not out:find('child done', 1, true) and got < STEPS, string.format('kill %d stopped the run', i))
  else
    print(string.format('run %d: started from checkpoint %s, ran to the end', i, tostring(starts[i])))
    check(out:find('child done', 1, true), 'the resumed run finished: ' .. out)
  end
end
check(starts[1] == 'nil' and tonumber(starts[2]) and tonumber(starts[2]) <= draws[1] and tonumber(starts[3]) and
  tonumber(starts[3]) <= draws[2] and tonumber(starts[3]) >= tonumber(starts[2]),
  'the restarted runs resumed from the checkpoints before each kill: ' .. table.concat(starts, ', '))

-- 3. the same losses, bit for bit
local resumed = metric_lines(dir)
check(#resumed == STEPS, string.format('the resumed run logged %d steps (%d)', STEPS, #resumed))
local differ = 0
for i = 1, math.max(#full, #resumed) do
  local a, b = full[i] or '', resumed[i] or ''
  local function field(line, key) return line:match('"' .. key .. '":([^,}]+)') end
  for _, key in ipairs({ 'step', 'loss', 'lr', 'val_loss' }) do
    if field(a, key) ~= field(b, key) then
      differ = differ + 1
      print(string.format('  line %d %s: %s vs %s', i, key, tostring(field(a, key)), tostring(field(b, key))))
    end
  end
end
local n_val = select(2, table.concat(full, '\n'):gsub('"val_loss"', ''))
check(n_val == STEPS / 5, 'validation losses were logged')
check(differ == 0, 'every loss, lr and val_loss of the resumed run equals the uninterrupted run\'s')
print(string.format('compared %d logged steps (%d with val_loss): %d differences', #full, n_val, differ))

testlib.rmdir(work)
checker.done()
