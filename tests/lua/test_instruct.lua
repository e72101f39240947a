-- test_instruct.lua: mtt.data.instruct (batches, replay, resume), mtt.train's per-task
-- logging, checkpoint list and init, and recipes/instruct.lua end to end.
--   1. layout: every row segment of padded and packed batches is exactly mtt.tasks.encode's
--      encoding of the instance info names (idx = ids[1..n-1]; targets = the next id on the
--      target + eot span, -100 elsewhere, pads -100); T a multiple of 8; bucketing pads less
--      than no bucketing;
--   2. streams: each task's instances come in seeded permutations, no repeat within an epoch;
--      'val' is the held-out instances task by task; begin_eval() repeats it;
--   3. replay: by examples, exactly ratio * B rows over a pool; by tokens, replay tokens are
--      ratio of the real tokens (to a fraction of a row); the rows are the corpus' blocks;
--   4. loss_by_task (log_softmax + gather) against the fused cross-entropy with the other
--      tasks' targets masked;
--   5. resume: state() mid-pool, set_state() on a fresh object: the same batches, bitwise;
--   6. mtt.train: init from a state dict, task_loss / val_task_loss / replay in metrics.jsonl,
--      ckpt_steps with keep_checkpoints = 0, and stop + resume bitwise (losses and per-task
--      losses);
--   7. recipes/instruct.lua --quick from a small base model folder written here: the per-task
--      held-out loss falls and the tuned model folder loads.
-- Real task files: ../shared/data/niv2 (Super-NaturalInstructions).
local ffi = require 'ffi'
local mtt = require 'mtt'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_instruct')
local check = checker.check
local work = testlib.tmpdir()

mtt.threads(2)
local NIV2 = mtt.root .. '/../shared/data/niv2'
local NAMES = { 'task1087_two_number_sum', 'task1146_country_capital', 'task1189_check_char_in_string',
  'task1315_find_range_array', 'task1509_evalution_antonyms', 'task062_bigbench_repeat_copy_logic' }
local tasks = mtt.tasks.load(NIV2, { names = NAMES })
check(#tasks == #NAMES, 'the niv2 tasks load')
local texts = {}
for _, t in ipairs(tasks) do
  for _, i in ipairs(t.instances) do texts[#texts + 1] = 'Input: ' .. i.input .. '\nOutput: ' .. i.outputs[1] end
end
local tok = mtt.tokenizer.train { texts = texts, vocab_size = 384 }
local BLOCK, FORMAT = 48, 'exemplars'
local by_name = {}
for _, t in ipairs(tasks) do by_name[t.name] = t end

local function i32(t) return ffi.cast('int32_t *', t:data_ptr()) end
local function dims(t) return tonumber(t.dims[0]), tonumber(t.dims[1]) end
-- bitwise equality of two f32 or i32 tensors of the same shape
local function teq(a, b)
  if a:numel() ~= b:numel() or a.ndim ~= b.ndim then return false end
  for d = 0, a.ndim - 1 do if a.dims[d] ~= b.dims[d] then return false end end
  a, b = a:contiguous(), b:contiguous()
  local n = a:numel() * 4
  return ffi.string(ffi.cast('const char *', a:data_ptr()), n) == ffi.string(ffi.cast('const char *', b:data_ptr()), n)
end
local function mix(seed) return mtt.data.mixture { tasks = tasks, cap = 100, temperature = 2, seed = seed or 1 } end

-- ---- 1. layout against mtt.tasks.encode ----
local function check_layout(name, idx, targets, info, split)
  local B, T = dims(idx)
  local ip, tp = i32(idx), i32(targets)
  local bad, covered, segs = 0, {}, 0
  for r = 1, B do
    local row = info.rows[r]
    for _, seg in ipairs(row.segments) do
      segs = segs + 1
      if seg.task ~= 'replay' then
        local task = by_name[seg.task]
        local inst = split == 'val' and task.test[seg.instance] or task.train[seg.instance]
        local e = mtt.tasks.encode(tok, task, inst, { format = FORMAT, k = 0, seed = 1, max_len = BLOCK + 1 })
        if seg.len ~= #e.ids - 1 then bad = bad + 1 end
        for t = 0, seg.len - 1 do
          local at = (r - 1) * T + seg.start + t
          covered[at] = true
          local want_t = (t + 2 >= e.target_start) and e.ids[t + 2] or -100
          if ip[at] ~= e.ids[t + 1] or tp[at] ~= want_t then bad = bad + 1 end
        end
      else
        for t = 0, seg.len - 1 do covered[(r - 1) * T + seg.start + t] = true end
      end
    end
  end
  local pads = 0
  for at = 0, B * T - 1 do
    if not covered[at] then
      pads = pads + 1
      if tp[at] ~= -100 or ip[at] ~= tok.eot_id then bad = bad + 1 end
    end
  end
  check(bad == 0, string.format('%s: %d positions differ from mtt.tasks.encode / padding', name, bad))
  check(pads == info.n_pad and B * T - pads == info.n_tokens, name .. ': n_pad and n_tokens count the positions')
  check(T % (info.multiple or 1) == 0 and T <= BLOCK, string.format('%s: T = %d is a multiple of %d, at most %d', name, T,
    info.multiple or 1, BLOCK))
  if not info.packed then
    local longest = 0
    for _, row in ipairs(info.rows) do
      local len = 0
      for _, seg in ipairs(row.segments) do len = len + seg.len end
      longest = math.max(longest, len)
    end
    check(T == math.min(BLOCK, math.ceil(longest / (info.multiple or 1)) * (info.multiple or 1)),
      string.format('%s: T = %d is the longest row (%d) rounded up', name, T, longest))
  end
  return segs
end

local function pad_fraction(bucket, pack, multiple)
  local d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 1,
    bucket = bucket, pack = pack, pad_multiple = multiple }
  local pad, total = 0, 0
  for b = 1, 24 do
    local idx, targets, info = d:batch('train', 8)
    info.multiple, info.packed = multiple, pack
    check_layout(string.format('bucket %d%s batch %d', bucket, pack and ' packed' or '', b), idx, targets, info, 'train')
    pad, total = pad + info.n_pad, total + idx:numel()
  end
  return pad / total
end
local p1, p8, pk, p88 = pad_fraction(1), pad_fraction(8), pad_fraction(8, true), pad_fraction(8, false, 8)
print(string.format('padding: %.1f%% of positions without bucketing, %.1f%% with 8-batch pools (%.1f%% with T a ' ..
  'multiple of 8); packed rows %.1f%%', 100 * p1, 100 * p8, 100 * p88, 100 * pk))
check(p8 < p1 * 0.75, 'length bucketing pads less than no bucketing')
check(pk < p8, 'packing pads least')

do -- val batches: the same layout, held-out instances of every task in turn
  local d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 1 }
  local idx, targets, info = d:batch('val', #tasks)
  check_layout('val', idx, targets, info, 'val')
  local seen = {}
  for _, row in ipairs(info.rows) do seen[row.task] = (seen[row.task] or 0) + 1 end
  local all = true
  for _, t in ipairs(tasks) do all = all and seen[t.name] == 1 end
  check(all, 'the first val batch has one held-out instance of each task')
  d:begin_eval()
  local idx2 = d:batch('val', #tasks)
  check(teq(idx2, idx), 'begin_eval() starts the val stream again')
  local n = 0
  for vi, _, vinfo in d:iter_val(5) do n = n + #vinfo.rows; check(tonumber(vi.dims[0]) <= 5, 'iter_val batch size') end
  local n_test = 0
  for _, t in ipairs(tasks) do n_test = n_test + #t.test end
  check(n == n_test, string.format('iter_val visits every held-out instance once (%d of %d)', n, n_test))
end

-- ---- 2. per-task streams: permutations per epoch ----
do
  local d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 5 }
  local i = 1
  local n = #tasks[i].train
  local epochs = {}
  for e = 1, 2 do
    local seen, order = {}, {}
    for _ = 1, n do
      local ex = d:_next(i)
      seen[ex.instance] = (seen[ex.instance] or 0) + 1
      order[#order + 1] = ex.instance
    end
    local ok = true
    for j = 1, n do ok = ok and seen[j] == 1 end
    check(ok, string.format('epoch %d of %s visits each of its %d train instances once', e, tasks[i].name, n))
    epochs[e] = table.concat(order, ',')
  end
  check(epochs[1] ~= epochs[2], 'each epoch has its own order')
end

-- ---- 3. replay ----
local corpus_texts = {}
for k = 1, 200 do corpus_texts[k] = string.format('Line %d of the pre-training text, about numbers like %d.', k, k * 7) end
local function corpus() return mtt.data.corpus { texts = corpus_texts, tokenizer = tok, block_size = BLOCK, seed = 2, val_fraction = 0.1 } end
do
  local c = corpus()
  local d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 1,
    replay = { corpus = c, ratio = 0.25, by = 'examples' } }
  local ref = corpus() -- the same stream, read directly
  local rows, replay_rows, bad = 0, 0, 0
  for b = 1, 16 do
    local idx, targets, info = d:batch('train', 6)
    check_layout('replay by examples ' .. b, idx, targets, info, 'train')
    local B, T = dims(idx)
    local ip, tp = i32(idx), i32(targets)
    for r = 1, B do
      rows = rows + 1
      if info.rows[r].task == 'replay' then
        replay_rows = replay_rows + 1
        local ci, ct = ref:batch('train', 1)
        local cp, cq = i32(ci), i32(ct)
        for t = 0, T - 1 do
          if ip[(r - 1) * T + t] ~= cp[t] or tp[(r - 1) * T + t] ~= cq[t] then bad = bad + 1 end
        end
      end
    end
  end
  print(string.format('replay by examples: %d of %d rows (ratio 0.25)', replay_rows, rows))
  check(replay_rows == 0.25 * rows, 'replay rows are exactly 0.25 of the rows over whole pools')
  check(bad == 0, 'replay rows are the corpus stream, cut to the batch length, with loss everywhere')

  d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 1,
    replay = { corpus = corpus(), ratio = 0.3, by = 'tokens' } }
  local rep, real = 0, 0
  for _ = 1, 24 do
    local _, _, info = d:batch('train', 8)
    for _, row in ipairs(info.rows) do
      if row.task == 'replay' then rep = rep + row.segments[1].len end
    end
    real = real + info.n_tokens
  end
  print(string.format('replay by tokens: %d of %d real tokens = %.4f (ratio 0.3)', rep, real, rep / real))
  check(math.abs(rep / real - 0.3) < BLOCK / real, 'replay tokens are 0.3 of the real tokens, to within one row')
end

-- ---- 4. loss_by_task against the fused cross-entropy ----
mtt.manual_seed(3)
local function tiny_gpt()
  return mtt.nn.GPT { vocab_size = tok.vocab_size, n_positions = BLOCK, n_embd = 32, n_layer = 2, n_head = 4,
    resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
end
do
  local model = tiny_gpt()
  local d = mtt.data.instruct { mixture = mix(), tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 1,
    replay = { corpus = corpus(), ratio = 0.25 } }
  local idx, targets, info = d:batch('train', 8)
  local logits, loss = model(idx, targets)
  local by = d:loss_by_task(logits, targets, info)
  local s, n, worst = 0, 0, 0
  local B, T = dims(targets)
  for name, v in pairs(by) do
    s, n = s + v.sum, n + v.count
    -- the reference: the model's own loss with every other task's targets ignored
    local only = targets:clone()
    local op = i32(only)
    for r, row in ipairs(info.rows) do
      for _, seg in ipairs(row.segments) do
        if seg.task ~= name then
          for t = seg.start, seg.start + seg.len - 1 do op[(r - 1) * T + t] = -100 end
        end
      end
    end
    local _, ref = model(idx, only)
    worst = math.max(worst, math.abs(v.sum / v.count - ref:item()))
  end
  print(string.format('loss_by_task: %d groups, max |mean - fused cross-entropy| = %.2e; overall %.6f vs %.6f', (function()
    local k = 0
    for _ in pairs(by) do k = k + 1 end
    return k
  end)(), worst, s / n, loss:item()))
  check(worst < 1e-5, 'per-task means equal the fused cross-entropy over that task\'s targets')
  check(math.abs(s / n - loss:item()) < 1e-5 and n == info.n_target, 'the sums add up to the batch loss')
  check(by.replay ~= nil, "replay rows are counted under 'replay'")
end

-- ---- 5. resume mid-pool ----
local function batches_equal(a, b, n, B)
  local same = true
  for _ = 1, n do
    local i1, t1 = a:batch('train', B)
    local i2, t2 = b:batch('train', B)
    same = same and teq(i1, i2) and teq(t1, t2)
  end
  return same
end
for _, pack in ipairs({ false, true }) do
  local function make()
    return mtt.data.instruct { mixture = mtt.data.mixture { tasks = tasks, temperature = { { 0, 1 }, { 20, 5 } }, seed = 4 },
      tokenizer = tok, block_size = BLOCK, format = FORMAT, seed = 3, bucket = 4, pack = pack,
      replay = { corpus = corpus(), ratio = 0.2, by = 'tokens' } }
  end
  local a = make()
  for s = 1, 7 do a:set_step(s); a:batch('train', 6) end
  a:set_step(8)
  local st = a:state()
  local b = make():set_state(require('cjson').decode(require('cjson').encode(st))) -- as a checkpoint stores it
  check(batches_equal(a, b, 9, 6), string.format('%s: the batches after set_state(state()) are the same',
    pack and 'packed' or 'padded'))
end

-- ---- 6. mtt.train with instruct data ----
local function train_run(dir, opts)
  mtt.manual_seed(11)
  local model = tiny_gpt()
  local d = mtt.data.instruct { mixture = mtt.data.mixture { tasks = tasks, cap = 100, seed = 2 }, tokenizer = tok,
    block_size = BLOCK, format = FORMAT, seed = 2, replay = { corpus = corpus(), ratio = 0.25 } }
  local o = { model = model, data = d, run_dir = dir, steps = 12, batch_size = 6, grad_accum = 2, lr = 3e-3,
    warmup = 2, eval_every = 4, eval_batches = 2, log_every = 3, progress = false, seed = 5,
    ckpt_steps = { 1, 2, 5 }, keep_checkpoints = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return mtt.train(o), model
end
local init_sd
do -- the init weights: another model's
  mtt.manual_seed(99)
  local m = tiny_gpt()
  init_sd = {}
  for k, v in pairs(m:state_dict()) do init_sd[k] = v:clone() end
end
local full = train_run(work .. '/full', { init = init_sd })
local records = mtt.train.metrics.read(work .. '/full/metrics.jsonl')
local task_lines, val_lines, replay_seen = 0, 0, false
for _, rec in ipairs(records) do
  if rec.task_loss then
    task_lines = task_lines + 1
    replay_seen = replay_seen or rec.task_loss.replay ~= nil
  end
  if rec.val_task_loss then
    val_lines = val_lines + 1
    local n = 0
    for _ in pairs(rec.val_task_loss) do n = n + 1 end
    check(n == #tasks + 1, string.format('step %d: val_task_loss has every task and replay (%d)', rec.step, n))
  end
end
check(task_lines == #records and #records == 6, 'every log line (steps 3, 4, 6, 8, 9, 12) has task_loss (' .. task_lines .. ')')
check(val_lines == 3, 'every eval line has val_task_loss (' .. val_lines .. ')')
check(replay_seen, "task_loss has the 'replay' series")
check(records[1].real_tokens_per_s and records[1].real_tokens_per_s < records[1].tokens_per_s,
  'real_tokens_per_s (pads not counted) is logged')
local ck = mtt.checkpoint.list(work .. '/full/ckpt')
local steps = {}
for _, e in ipairs(ck) do steps[#steps + 1] = e.step end
check(table.concat(steps, ',') == '1,2,5,12', 'checkpoints at ckpt_steps and the end, all kept: ' .. table.concat(steps, ','))
do -- init: the first checkpoint's step started from init_sd (a different seed's weights)
  mtt.manual_seed(11)
  local m = tiny_gpt()
  local same_as_default = true
  for k, v in pairs(init_sd) do
    if not teq(v, m:state_dict()[k]) then same_as_default = false end
  end
  check(not same_as_default, 'the init weights differ from the seed-11 initialization')
  local r2 = train_run(work .. '/noinit', { steps = 1, warmup = 0, ckpt_steps = {} })
  check(r2.losses[1] ~= full.losses[1], 'init changes the first loss (init is used)')
end
-- stop after step 6 (on_step returns false), then continue
train_run(work .. '/stopped', { init = init_sd, on_step = function(info) return info.step ~= 6 end })
local resumed = train_run(work .. '/stopped', { init = init_sd })
check(resumed.resumed_from == 6, 'the second call resumed from step 6')
local function lines(path)
  local out, f = {}, io.open(path)
  for l in f:lines() do out[#out + 1] = l:gsub('"elapsed":[^,}]+', ''):gsub('"[%w_]*tokens_per_s":[^,}]+,?', '') end
  f:close()
  return out
end
local la, lb = lines(work .. '/full/metrics.jsonl'), lines(work .. '/stopped/metrics.jsonl')
local differ = #la == #lb and 0 or 1
for i = 1, math.max(#la, #lb) do if la[i] ~= lb[i] then differ = differ + 1 end end
check(differ == 0, string.format('stop + resume logs the same loss, task_loss, val_loss and val_task_loss bitwise (%d lines differ)', differ))
print(string.format('train: %d log lines, %d with val_task_loss; resumed run equal: %s', #records, val_lines, tostring(differ == 0)))

-- ---- 7. the recipe, --quick, from a base model folder written here ----
do
  local base = work .. '/base'
  mtt.io.makedirs(base)
  mtt.manual_seed(1)
  local texts2 = {}
  for _, t in ipairs(mtt.tasks.load(NIV2)) do
    for _, i in ipairs(t.instances) do texts2[#texts2 + 1] = 'Input: ' .. i.input .. '\nOutput: ' .. i.outputs[1] end
  end
  local tok2 = mtt.tokenizer.train { texts = texts2, vocab_size = 512 }
  local m = mtt.nn.GPT { vocab_size = tok2.vocab_size, n_positions = 32, n_embd = 64, n_layer = 2, n_head = 4,
    resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
  assert(mtt.train.metrics.write_file(base .. '/config.json', mtt.train.metrics.encode(m.config) .. '\n'))
  mtt.io.save_safetensors(base .. '/model.safetensors', m:state_dict({ tied = false }))
  tok2:save(base .. '/tokenizer.json')
  local exe = testlib.mtt_binary()
  local cmd = string.format("'%s' run '%s/recipes/instruct.lua' --quick --set base='%s' --set run_dir='%s/run' " ..
    "--set fallback_tasks='%s' --set split=/nonexistent 2>&1", exe, mtt.root, base, work, NIV2)
  local p = io.popen(cmd)
  local out = p:read('*a')
  p:close()
  local fell, of = out:match('the loss fell on (%d+) of (%d+) tasks')
  local mb, ma = out:match('mean over %d+ tasks: ([%d.]+) %-> ([%d.]+)')
  print(string.format('recipe --quick: the held-out loss fell on %s of %s tasks; mean %s -> %s', tostring(fell),
    tostring(of), tostring(mb), tostring(ma)))
  check(fell and tonumber(fell) >= 0.8 * tonumber(of) and tonumber(ma) < tonumber(mb) - 0.3,
    'the per-task held-out loss falls on most tasks:\n' .. out:sub(-3000))
  local tuned = mtt.nn.GPT(work .. '/run/model/config.json')
  local ok = pcall(function() tuned:load_state_dict((mtt.io.load_safetensors(work .. '/run/model/model.safetensors'))) end)
  check(ok, 'the tuned model folder loads')
  local recs = mtt.train.metrics.read(work .. '/run/metrics.jsonl')
  check(#recs > 0 and recs[#recs].task_loss and recs[#recs].val_task_loss, 'the recipe logs per-task series')
end

testlib.rmdir(work)
checker.done()
